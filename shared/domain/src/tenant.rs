//! Tenant ids: what may name a tenant, checked wherever one comes in (API keys, tracking
//! tokens, tenant keys, report definitions, the CLI).

use thiserror::Error;

/// An id that cannot name a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("`{0}` is not a tenant id: use 1 to 64 ASCII letters, digits, `-`, `_` or `.`")]
pub struct BadTenantId(pub String);

/// Whether `id` can name a tenant: 1 to 64 ASCII letters, digits, `-`, `_` or `.`.
/// Tenant ids are joined into keys with `#` (rollups) and `/` (S3 prefixes); a tenant
/// named `acme#D` or `acme/x` could otherwise read or write another tenant's items.
pub fn check(id: &str) -> Result<(), BadTenantId> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(BadTenantId(id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_cannot_reach_into_other_tenants_keys() {
        for good in ["acme", "Acme-EU_2", "t.1", &"x".repeat(64)] {
            assert!(check(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "acme#D",
            "acme/x",
            "a b",
            "acme:1",
            "é",
            &"x".repeat(65),
        ] {
            let e = check(bad).unwrap_err().to_string();
            assert!(e.contains("is not a tenant id"), "{bad}: {e}");
        }
    }
}
