// Beacon dashboard: a few pages over the stats API, routed by the URL fragment.
// Every number comes from one API answer and is shown as the API gives it; the page
// computes no rate of its own except where it says so (local-time buckets).
"use strict";

(() => {
  const main = document.getElementById("main");
  const SES_REVIEW = { bounce: 0.05, complaint: 0.001 }; // SES's account review levels
  let session = null;
  let timers = [];

  // ---- small helpers --------------------------------------------------------------
  const el = (tag, attrs = {}, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  };
  const fmt = new Intl.NumberFormat(undefined);
  const num = (n) => (n === null || n === undefined ? "–" : fmt.format(n));
  const pct = (r) => (r === null || r === undefined ? "–" : (r * 100).toFixed(r < 0.01 && r > 0 ? 2 : 1) + "%");
  const ms = (v) => (v === null || v === undefined ? "–" : v >= 1000 ? (v / 1000).toFixed(1) + " s" : v + " ms");
  const when = (t) => (t ? new Date(t).toLocaleString() : "–");
  const enc = encodeURIComponent;

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.error && body.error.message) || `HTTP ${status}`);
      this.status = status;
      this.code = body && body.error && body.error.code;
    }
  }

  async function api(path, options = {}) {
    const r = await fetch(path, { credentials: "same-origin", headers: { accept: "application/json" }, ...options });
    let body = null;
    try { body = await r.json(); } catch (_) { /* not JSON */ }
    if (!r.ok) throw new ApiError(r.status, body);
    return body;
  }

  function show(...nodes) {
    main.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined));
  }

  function loading(what) {
    show(el("p", { class: "state loading", role: "status" }, `Loading ${what}…`));
  }

  function failure(e, retry) {
    if (e.status === 401) {
      return el("div", { class: "state", role: "alert" },
        el("h1", {}, "Open your dashboard link"),
        el("p", {}, "This dashboard opens from a link someone made for you with ",
          el("code", {}, "beacon dashboard link"), ". Your session has ended or the link was revoked; ask for a new link."));
    }
    if (e.status === 403) {
      return el("div", { class: "state error", role: "alert" },
        el("h1", {}, "Not in this link"), el("p", {}, e.message));
    }
    return el("div", { class: "state error", role: "alert" },
      el("h1", {}, e.status === 404 ? "Not found" : "Something went wrong"),
      el("p", {}, e.message),
      retry ? el("button", { type: "button", onclick: retry }, "Try again") : null);
  }

  function table(caption, columns, rows, { sortable = false, initial = null } = {}) {
    // columns: [{label, value(row), show?(row) -> text/node, numeric}]
    const t = el("table");
    t.append(el("caption", {}, caption));
    const head = el("tr");
    const body = el("tbody");
    let sort = initial;
    const render = () => {
      let list = rows.slice();
      if (sort) {
        const c = columns[sort.index];
        list.sort((a, b) => {
          const x = c.value(a), y = c.value(b);
          const d = x === y ? 0 : x === null || x === undefined ? -1 : y === null || y === undefined ? 1 : x < y ? -1 : 1;
          return sort.dir === "ascending" ? d : -d;
        });
      }
      body.replaceChildren(...list.map((r) => el("tr", {}, columns.map((c) =>
        el(c.header ? "th" : "td", { class: c.numeric ? "n" : c.cls, scope: c.header ? "row" : null },
          c.show ? c.show(r) : c.numeric ? num(c.value(r)) : c.value(r))))));
      head.querySelectorAll("th").forEach((th, i) => {
        if (!sortable) return;
        th.setAttribute("aria-sort", sort && sort.index === i ? sort.dir : "none");
      });
    };
    columns.forEach((c, i) => {
      const th = el("th", { scope: "col", class: c.numeric ? "n" : null });
      if (sortable) {
        th.append(el("button", { type: "button", onclick: () => {
          sort = { index: i, dir: sort && sort.index === i && sort.dir === "descending" ? "ascending" : "descending" };
          render();
        } }, c.label));
      } else th.append(c.label);
      head.append(th);
    });
    t.append(el("thead", {}, head), body);
    render();
    return t;
  }

  function card(label, value, sub, cls) {
    return el("div", { class: "card" }, el("dt", {}, label),
      el("dd", { class: cls, "data-metric": label }, value, sub ? el("small", {}, " ", sub) : null));
  }

  // ---- pages ----------------------------------------------------------------------
  async function campaignsPage() {
    loading("campaigns");
    const list = await api("/v1/campaigns?limit=200");
    if (list.campaigns.length === 0) {
      show(el("h1", {}, "Campaigns"), el("div", { class: "state empty" },
        el("h2", {}, "No campaigns yet"),
        el("p", {}, "Beacon counts a campaign as soon as its first event arrives. Send events with a ",
          el("code", {}, "campaign_id"), " to the collect API, tag your SES mail with ", el("code", {}, "beacon-campaign"),
          ", or connect your sender's webhooks (see “Connect your sender” in the docs).")));
      return;
    }
    const overviews = await inBatches(list.campaigns, 6, (c) =>
      api(`/v1/campaigns/${enc(c.campaign_id)}`).catch(() => null));
    const rows = list.campaigns.map((c, i) => ({ ...c, o: overviews[i] }));
    const search = el("input", { type: "search", id: "campaign-search", placeholder: "Campaign id" });
    const holder = el("div", { class: "panel" });
    const cols = [
      { label: "Campaign", header: true, value: (r) => r.campaign_id,
        show: (r) => el("a", { href: `#/campaign/${enc(r.campaign_id)}` }, r.campaign_id) },
      { label: "Sent", numeric: true, value: (r) => r.o && r.o.counts.sent },
      { label: "Delivery rate", numeric: true, value: (r) => r.o && r.o.rates.delivery_rate, show: (r) => pct(r.o && r.o.rates.delivery_rate) },
      { label: "Human open rate", numeric: true, value: (r) => r.o && r.o.rates.open_rate, show: (r) => pct(r.o && r.o.rates.open_rate) },
      { label: "Human click rate", numeric: true, value: (r) => r.o && r.o.rates.click_rate, show: (r) => pct(r.o && r.o.rates.click_rate) },
      { label: "Last activity", value: (r) => r.last_seen, show: (r) => when(r.last_seen) },
    ];
    const draw = () => {
      const q = search.value.trim().toLowerCase();
      const shown = rows.filter((r) => r.campaign_id.toLowerCase().includes(q));
      holder.replaceChildren(shown.length
        ? table(`${shown.length} of ${rows.length} campaigns`, cols, shown, { sortable: true, initial: { index: 5, dir: "descending" } })
        : el("p", { class: "note" }, "No campaign matches."));
    };
    search.addEventListener("input", draw);
    show(el("h1", {}, "Campaigns"),
      el("div", { class: "controls" }, el("label", { for: "campaign-search" }, "Search", search)),
      holder,
      list.next_cursor ? el("p", { class: "note" }, "Showing the first 200 campaigns.") : null);
    draw();
  }

  async function inBatches(items, width, f) {
    const out = new Array(items.length);
    let next = 0;
    await Promise.all(Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await f(items[i]);
      }
    }));
    return out;
  }

  function overviewCards(o) {
    const c = o.counts, u = o.unique, r = o.rates;
    return el("dl", { class: "cards" },
      card("Sent", num(c.sent)),
      card("Delivered", num(c.delivered), pct(r.delivery_rate)),
      card("Human opens", num(c.opens_human), `${num(u.opens_human)} unique`, "human"),
      card("Machine opens", num(c.opens_machine), null, "machine"),
      card("Human clicks", num(c.clicks_human), `${num(u.clicks_human)} unique`, "human"),
      card("Bot clicks", num(c.clicks_bot), null, "machine"),
      card("Open rate (human)", pct(r.open_rate)),
      card("Click rate (human)", pct(r.click_rate)),
      card("Click-to-open", pct(r.click_to_open_rate)),
      card("Bounces", num(c.bounced), `${num(c.bounced_hard)} hard · ${pct(r.bounce_rate)}`),
      card("Complaints", num(c.complained), pct(r.complaint_rate)),
      card("Unsubscribed", num(c.unsubscribed), pct(r.unsubscribe_rate)));
  }

  // What each verdict reason means: the keys of `machine_opens_by_reason` and
  // `bot_clicks_by_reason` (docs/stats-api.md).
  const REASONS = {
    apple_proxy: "Apple Mail Privacy Protection (from Apple's proxy network)",
    apple_mpp_agent: "Apple Mail Privacy Protection (its bare agent)",
    scanner_network: "Security scanner's network",
    scanner_agent: "Security scanner's agent",
    machine_agent: "Headless browser, script or link preview",
    provider_flagged: "Flagged as a machine by the email provider",
    bot_device: "Bot device",
    honeypot: "Followed the invisible honeypot link",
    near_honeypot: "Beside a honeypot click",
    click_burst: "Clicks on several links within seconds",
    clicked_on_delivery: "Clicked within seconds of delivery",
    opened_on_delivery: "Opened within seconds of delivery",
    opened_with_scan: "Opened beside a scanner's clicks",
    other: "Other",
  };

  // A verdict as people read it: a machine reason's label, or the human reason as is.
  const HUMAN_REASONS = { default: "A person", gmail_image_proxy: "A person, through Gmail's image proxy",
    bare_agent_outside_apple: "A person (bare agent outside Apple's network)" };
  const verdict = (h) => (h.machine ? `Machine: ${REASONS[h.reason] || h.reason}` : HUMAN_REASONS[h.reason] || `A person (${h.reason})`);

  function recentMessages(r) {
    if (!r.messages.length) {
      return el("p", { class: "note", id: "recent-messages" }, "No message of this recipient was opened or clicked in the last 35 days.");
    }
    const rows = r.messages.flatMap((m) => m.hits.map((h, i) => ({ m, h, first: i === 0 })));
    return el("div", { id: "recent-messages" }, table("Each open and click of the recipient's recent messages, with the verdict it is counted under", [
      { label: "Message", header: true, value: (x) => x.m.message_id, show: (x) => (x.first ? x.m.message_id : "") },
      { label: "Campaign", value: (x) => x.m.campaign_id || "–", show: (x) => (x.first ? x.m.campaign_id || "–" : "") },
      { label: "When", value: (x) => x.h.at, show: (x) => el("time", { datetime: x.h.at }, when(x.h.at)) },
      { label: "What", value: (x) => x.h.kind, show: (x) => (x.h.kind === "open" ? "Open" : x.h.honeypot ? "Click (honeypot)" : "Click") },
      { label: "Verdict", value: (x) => verdict(x.h) },
    ], rows));
  }

  function reasonTable(o) {
    const opens = o.machine_opens_by_reason || {}, clicks = o.bot_clicks_by_reason || {};
    const rows = Object.keys(REASONS).filter((r) => opens[r] || clicks[r])
      .map((r) => ({ reason: r, opens: opens[r] || 0, clicks: clicks[r] || 0 }));
    if (!rows.length) return el("p", { class: "note" }, "No machine opens or bot clicks.");
    return table("Machine opens and bot clicks, by why they were judged machines", [
      { label: "Reason", header: true, value: (r) => REASONS[r.reason] },
      { label: "Machine opens", numeric: true, value: (r) => r.opens },
      { label: "Bot clicks", numeric: true, value: (r) => r.clicks },
    ], rows, { sortable: true });
  }

  function latencyTable(l) {
    return table("Delivery latency (send to delivery)", [
      { label: "Delivered messages", numeric: true, value: () => l.count },
      { label: "Average", numeric: true, value: () => l.avg_ms, show: () => ms(l.avg_ms && Math.round(l.avg_ms)) },
      { label: "p50", numeric: true, value: () => l.p50_ms, show: () => ms(l.p50_ms) },
      { label: "p95", numeric: true, value: () => l.p95_ms, show: () => ms(l.p95_ms) },
      { label: "p99", numeric: true, value: () => l.p99_ms, show: () => ms(l.p99_ms) },
    ], [l]);
  }

  const TIME_ZONES = ["UTC", Intl.DateTimeFormat().resolvedOptions().timeZone, "America/New_York", "Europe/London", "Europe/Berlin", "Asia/Tokyo", "Australia/Sydney"]
    .filter((z, i, all) => z && all.indexOf(z) === i);

  // Hourly points re-bucketed into the days of `zone` (the API's days are UTC days).
  function localDays(points, zone) {
    const day = new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit" });
    const out = new Map();
    for (const p of points) {
      const key = day.format(new Date(p.start));
      const acc = out.get(key) || { start: key, counts: {} };
      for (const [k, v] of Object.entries(p.counts)) acc.counts[k] = (acc.counts[k] || 0) + v;
      out.set(key, acc);
    }
    return [...out.values()];
  }

  function chart(holder, points, zone, grain) {
    holder.replaceChildren();
    if (!window.uPlot) {
      holder.append(el("p", { class: "note" }, "The chart library did not load."));
      return;
    }
    // Days are placed at their UTC noon and labelled by date, so a day never reads as
    // an hour; hours are placed at their instant and shown in the chosen zone.
    const xs = points.map((p) => (grain === "hour"
      ? Date.parse(p.start) / 1000
      : Date.parse(p.start.slice(0, 10) + "T12:00:00Z") / 1000));
    const dayLabel = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
    const dayAxis = { space: 48, incrs: [86400, 7 * 86400, 30 * 86400],
      values: (u, splits) => splits.map((s) => dayLabel.format(new Date(s * 1000))) };
    const series = ["opens_human", "opens_machine", "clicks_human", "clicks_bot", "delivered"];
    const data = [xs, ...series.map((k) => points.map((p) => p.counts[k] || 0))];
    const width = Math.max(280, holder.clientWidth || 600);
    // eslint-disable-next-line no-undef
    const plot = new uPlot({
      width, height: 260, tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), grain === "hour" ? zone : "UTC"),
      series: [{}, 
        { label: "Human opens", stroke: "#0b5cad", width: 2 },
        { label: "Machine opens", stroke: "#9a4d00", width: 2, dash: [6, 4] },
        { label: "Human clicks", stroke: "#1b6e2d", width: 2 },
        { label: "Bot clicks", stroke: "#a4161a", width: 2, dash: [6, 4] },
        { label: "Delivered", stroke: "#6b7280", width: 1 }],
      axes: [grain === "hour" ? {} : dayAxis, { size: 56 }],
    }, data, holder);
    // Follow the panel's width (a phone turned, a window resized); one observer per
    // holder, whichever chart it holds now.
    if (holder.beaconResize) holder.beaconResize.disconnect();
    holder.beaconResize = new ResizeObserver(() => {
      const w = Math.max(280, holder.clientWidth || 600);
      if (w !== plot.width) plot.setSize({ width: w, height: 260 });
    });
    holder.beaconResize.observe(holder);
    const totals = series.map((k, i) => data[i + 1].reduce((a, b) => a + b, 0));
    holder.append(el("p", { class: "note", id: "series-totals" },
      `In this range: ${num(totals[0])} human opens, ${num(totals[1])} machine opens, ${num(totals[2])} human clicks, ${num(totals[3])} bot clicks, ${num(totals[4])} delivered.`));
  }

  async function campaignPage(id, params) {
    loading(`campaign ${id}`);
    const base = `/v1/campaigns/${enc(id)}`;
    const [o, links, channels] = await Promise.all([
      api(base), api(`${base}/links?limit=20`), api(`${base}/channels`)]);
    const range = el("select", { id: "range" },
      ["7", "30", "90"].map((d) => el("option", { value: d, selected: (params.get("days") || "7") === d }, `Last ${d} days`)));
    const grain = el("select", { id: "grain" },
      el("option", { value: "day", selected: params.get("grain") !== "hour" }, "Daily"),
      el("option", { value: "hour", selected: params.get("grain") === "hour" }, "Hourly"));
    const zone = el("select", { id: "zone" }, TIME_ZONES.map((z) => el("option", { value: z, selected: (params.get("tz") || "UTC") === z }, z)));
    const chartHolder = el("div", { class: "chart", id: "chart", role: "img", "aria-label": "Opens and clicks over time, human and machine" });
    const chartNote = el("p", { class: "note", id: "chart-note" });
    const drawSeries = async () => {
      const days = Number(range.value);
      let g = grain.value;
      if (g === "hour" && days > 31) { g = "day"; }
      const now = new Date();
      const from = new Date(now.getTime() - days * 86400e3).toISOString().slice(0, 10);
      // Local days are built from hours where the API allows (31 days); beyond, UTC days.
      const local = g === "day" && zone.value !== "UTC" && days <= 31;
      const asked = local ? "hour" : g;
      chartHolder.replaceChildren(el("p", { class: "state loading", role: "status" }, "Loading the series…"));
      try {
        const s = await api(`${base}/timeseries?grain=${asked}&from=${from}`);
        const points = local ? localDays(s.points, zone.value) : s.points;
        chart(chartHolder, points, zone.value, g);
        chartNote.textContent = g === "day" && zone.value !== "UTC" && !local
          ? "Days beyond 31 are UTC days." : g === "day" ? `Days in ${zone.value}.` : `Hours in ${zone.value}.`;
        history.replaceState(null, "", `#/campaign/${enc(id)}?days=${days}&grain=${g}&tz=${enc(zone.value)}`);
      } catch (e) {
        chartHolder.replaceChildren(failure(e, drawSeries));
      }
    };
    [range, grain, zone].forEach((s) => s.addEventListener("change", drawSeries));

    const compareSelect = el("select", { id: "compare" }, el("option", { value: "" }, "Compare with…"));
    const compareHolder = el("div", { id: "comparison" });
    if (session && !session.campaign) {
      api("/v1/campaigns?limit=200").then((l) => l.campaigns.filter((c) => c.campaign_id !== id)
        .forEach((c) => compareSelect.append(el("option", { value: c.campaign_id }, c.campaign_id)))).catch(() => {});
      compareSelect.addEventListener("change", async () => {
        if (!compareSelect.value) { compareHolder.replaceChildren(); return; }
        try {
          const other = await api(`/v1/campaigns/${enc(compareSelect.value)}`);
          compareHolder.replaceChildren(comparison(o, other));
        } catch (e) { compareHolder.replaceChildren(failure(e)); }
      });
    }

    const linkRows = links.links;
    show(
      el("h1", {}, "Campaign ", el("span", { id: "campaign-id" }, id)),
      el("p", { class: "note" }, o.range_covers_campaign ? "Whole campaign." : `From ${o.from} to ${o.to}.`),
      overviewCards(o),
      el("h2", {}, "Over time"),
      el("div", { class: "controls" },
        el("label", { for: "range" }, "Range", range), el("label", { for: "grain" }, "Grain", grain),
        el("label", { for: "zone" }, "Time zone", zone)),
      el("div", { class: "panel" }, chartHolder, chartNote),
      el("div", { class: "split" },
        el("section", {}, el("h2", {}, "Top links"), el("div", { class: "panel" }, linkRows.length
          ? table(`${links.links_total} links, by human clicks`, [
            { label: "Link", cls: "url", value: (l) => l.url,
              // The invisible link only scanners follow: named, so nobody wonders who clicked it.
              show: (l) => l.url.endsWith("#beacon-honeypot")
                ? el("span", {}, l.url, " ", el("span", { class: "tag" }, "honeypot")) : l.url },
            { label: "Human clicks", numeric: true, value: (l) => l.clicks_human },
            { label: "Unique clickers", numeric: true, value: (l) => l.unique_clickers_human },
            { label: "Bot clicks", numeric: true, value: (l) => l.clicks_bot },
          ], linkRows, { sortable: true })
          : el("p", { class: "note" }, "No clicks yet."))),
        el("section", {}, el("h2", {}, "Delivery"), el("div", { class: "panel" }, latencyTable(o.latency)))),
      el("section", {}, el("h2", {}, "Channels and providers"),
        el("div", { class: "panel", id: "campaign-channels" }, campaignChannelTable(channels))),
      el("section", {}, el("h2", {}, "Machines, by reason"), el("div", { class: "panel", id: "reasons" }, reasonTable(o))),
      session && !session.campaign ? el("section", {}, el("h2", {}, "Compare"),
        el("div", { class: "controls" }, el("label", { for: "compare" }, "Another campaign", compareSelect)), compareHolder) : null,
    );
    drawSeries();
  }

  function comparison(a, b) {
    const rows = [
      ["Sent", (o) => num(o.counts.sent)],
      ["Delivery rate", (o) => pct(o.rates.delivery_rate)],
      ["Human open rate", (o) => pct(o.rates.open_rate)],
      ["Human click rate", (o) => pct(o.rates.click_rate)],
      ["Machine opens", (o) => num(o.counts.opens_machine)],
      ["Bot clicks", (o) => num(o.counts.clicks_bot)],
      ["Bounce rate", (o) => pct(o.rates.bounce_rate)],
      ["Complaint rate", (o) => pct(o.rates.complaint_rate)],
    ];
    return el("div", { class: "panel" }, table("Side by side", [
      { label: "", header: true, value: (r) => r[0] },
      { label: a.campaign_id, numeric: true, value: (r) => r[1](a) },
      { label: b.campaign_id, numeric: true, value: (r) => r[1](b) },
    ], rows));
  }

  function level(rate, review) {
    if (rate === null || rate === undefined) return el("span", {}, "–");
    const cls = rate >= review ? "level-bad" : rate >= review / 2 ? "level-warn" : "level-ok";
    const word = rate >= review ? "at or above SES's review level" : rate >= review / 2 ? "over half of SES's review level" : "well under SES's review level";
    return el("span", { class: cls }, `${pct(rate)} (${word}, ${pct(review)})`);
  }

  async function deliverabilityPage() {
    loading("deliverability");
    const [s, alerts, channels] = await Promise.all([
      api("/v1/timeseries?grain=day"), api("/v1/alerts"), api("/v1/channels?limit=20")]);
    const lookupInput = el("input", { id: "suppression-recipient", placeholder: "Recipient id", required: true });
    const lookupChannel = el("input", { id: "suppression-channel", value: "email" });
    const lookupOut = el("div", { id: "suppression-result", "aria-live": "polite" });
    const lookup = el("form", { class: "controls", onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const r = await api(`/v1/suppressions/${enc(lookupChannel.value)}/${enc(lookupInput.value.trim())}`);
        lookupOut.replaceChildren(el("p", {}, r.suppressed
          ? `Suppressed on ${r.channel} since ${when(r.since)} (${reasons(r)}).` : `Not suppressed on ${r.channel}.`));
      } catch (e) { lookupOut.replaceChildren(failure(e)); }
    } }, el("label", { for: "suppression-recipient" }, "Recipient", lookupInput),
      el("label", { for: "suppression-channel" }, "Channel", lookupChannel), el("button", { type: "submit" }, "Look up"));
    const exportButton = el("button", { type: "button", onclick: () => exportSuppressions(lookupChannel.value) }, "Export the suppression list (CSV)");
    show(el("h1", {}, "Deliverability"),
      el("p", { class: "note" }, `Last 30 days, all campaigns (${s.from.slice(0, 10)} to ${s.to.slice(0, 10)}).`),
      el("dl", { class: "cards" },
        card("Sent", num(s.totals.sent)), card("Delivered", num(s.totals.delivered), pct(s.rates.delivery_rate)),
        card("Bounces", num(s.totals.bounced)), card("Complaints", num(s.totals.complained))),
      el("div", { class: "panel" }, el("p", { id: "bounce-level" }, "Bounce rate: ", level(s.rates.bounce_rate, SES_REVIEW.bounce)),
        el("p", { id: "complaint-level" }, "Complaint rate: ", level(s.rates.complaint_rate, SES_REVIEW.complaint))),
      el("h2", {}, "Alerts"), el("div", { class: "panel" }, alertTable(alerts.rules)),
      el("h2", {}, "By channel and provider"), el("div", { class: "panel" }, channels.channels.length
        ? table("Last 30 days, all campaigns", [...CHANNEL_COLUMNS,
          { label: "Delivery p95", numeric: true, value: (c) => c.latency.p95_ms, show: (c) => ms(c.latency.p95_ms) },
        ], channels.channels, { sortable: true })
        : el("p", { class: "note" }, "No channel has traffic in the last 30 days.")),
      el("h2", {}, "Suppression list"), el("div", { class: "panel" }, lookup, lookupOut, exportButton));
  }

  // A suppression's reasons (hard bounce, complaint, unsubscribe, manual).
  const reasons = (r) => Object.keys(r.reasons || {}).join(", ").replace(/_/g, " ");

  function showValue(metric, v) {
    if (v === null || v === undefined) return "–";
    return metric === "spend" ? num(v) : pct(v);
  }

  // A channel/provider's delivery numbers: the tenant's (deliverability) and a
  // campaign's tables both start with them.
  const CHANNEL_COLUMNS = [
    { label: "Channel", header: true, value: (c) => c.channel },
    { label: "Provider", value: (c) => c.provider || "–" },
    { label: "Sent", numeric: true, value: (c) => c.counts.sent },
    { label: "Delivery rate", numeric: true, value: (c) => c.rates.delivery_rate, show: (c) => pct(c.rates.delivery_rate) },
    { label: "Bounce rate", numeric: true, value: (c) => c.rates.bounce_rate, show: (c) => pct(c.rates.bounce_rate) },
    { label: "Complaint rate", numeric: true, value: (c) => c.rates.complaint_rate, show: (c) => pct(c.rates.complaint_rate) },
  ];

  function campaignChannelTable(c) {
    if (!c.channels.length) {
      return el("p", { class: "note" }, "No event of this campaign named a channel or provider.");
    }
    const caption = (c.truncated ? `Its last days, from ${c.from.slice(0, 10)}: ` : "") +
      "the campaign's numbers per channel and provider";
    return el("div", {}, table(caption, [...CHANNEL_COLUMNS,
      { label: "Human opens", numeric: true, value: (r) => r.counts.opens_human },
      { label: "Machine opens", numeric: true, value: (r) => r.counts.opens_machine },
      { label: "Human clicks", numeric: true, value: (r) => r.counts.clicks_human },
      { label: "Bot clicks", numeric: true, value: (r) => r.counts.clicks_bot },
    ], c.channels, { sortable: true }),
    el("p", { class: "note" }, "Opens and clicks through Beacon's own tracking links name the channel, not the provider that sent the message."));
  }

  function alertTable(rules) {
    return table("Rules in force, as of the last evaluation (every five minutes)", [
      { label: "Rule", header: true, value: (r) => r.id,
        show: (r) => el("span", {}, r.id, el("br"), el("small", { class: "note" }, r.description)) },
      { label: "State", value: (r) => r.status,
        show: (r) => el("span", { class: r.status === "firing" ? "level-bad" : "level-ok" },
          !r.enabled ? "disabled" : r.status === "firing" ? `firing since ${when(r.since)}` : r.since ? `resolved ${when(r.since)}` : "ok") },
      { label: "Last reading", numeric: true, value: (r) => r.last && r.last.value,
        show: (r) => r.last ? `${showValue(r.metric, r.last.value)} of ${num(r.last.volume)}` : "–" },
      { label: "History", value: (r) => r.history.length,
        show: (r) => r.history.length
          ? el("ul", { class: "feed" }, r.history.slice(0, 5).map((c) =>
            el("li", {}, el("time", { datetime: c.at }, when(c.at)), c.status === "firing" ? "fired" : "resolved",
              c.value !== undefined ? ` at ${showValue(r.metric, c.value)}` : "")))
          : "never fired" },
    ], rules);
  }

  async function exportSuppressions(channel) {
    const lines = ["recipient,channel,since,reasons,campaign"];
    let cursor = null;
    const q = (v) => `"${String(v ?? "").replace(/"/g, '""')}"`;
    do {
      const page = await api(`/v1/suppressions?channel=${enc(channel)}&limit=1000${cursor ? `&cursor=${enc(cursor)}` : ""}`);
      for (const s of page.suppressions) lines.push([s.recipient, s.channel, s.since, reasons(s), s.campaign].map(q).join(","));
      cursor = page.next_cursor;
    } while (cursor);
    const blob = new Blob([lines.join("\n") + "\n"], { type: "text/csv" });
    const a = el("a", { href: URL.createObjectURL(blob), download: `suppressions-${channel}.csv` });
    document.body.append(a); a.click(); a.remove();
  }

  async function audiencePage() {
    loading("audience");
    const seg = await api("/v1/segments");
    const input = el("input", { id: "recipient", placeholder: "Recipient id", required: true });
    const out = el("div", { id: "recipient-result", "aria-live": "polite" });
    const form = el("form", { class: "controls", onsubmit: async (ev) => {
      ev.preventDefault();
      const id = input.value.trim();
      try {
        const [e, sup, recent] = await Promise.all([api(`/v1/recipients/${enc(id)}/engagement`),
          api(`/v1/suppressions/email/${enc(id)}`), api(`/v1/recipients/${enc(id)}/messages`)]);
        const s = e.engagement;
        out.replaceChildren(el("dl", { class: "cards" },
          card("Score", num(s.score)), card("Segment", s.segment),
          card("Messages delivered", num(s.delivered)), card("Opened", num(s.opened)),
          card("Clicked", num(s.clicked)), card("Conversions", num(s.conversions)),
          card("Last activity", s.last_activity || "–"),
          card("Suppressed (email)", sup.suppressed ? "yes" : "no", sup.suppressed ? reasons(sup) : null)),
          el("p", { class: "note" }, "Opens and clicks count here only when they were a person's: machine opens and bot clicks score nothing."),
          el("h3", {}, "Recent messages"), recentMessages(recent));
        out.dataset.recipient = id;
      } catch (err) { out.replaceChildren(failure(err)); }
    } }, el("label", { for: "recipient" }, "Recipient", input), el("button", { type: "submit" }, "Look up"));
    show(el("h1", {}, "Audience"),
      el("p", { class: "note" }, `${num(seg.recipients)} recipients, scored as of ${seg.as_of}.`),
      el("div", { class: "panel" }, table("Engagement segments", [
        { label: "Segment", header: true, value: (r) => r[0] },
        { label: "Recipients", numeric: true, value: (r) => r[1].recipients },
        { label: "Lowest score", numeric: true, value: (r) => r[1].min_score },
      ], Object.entries(seg.segments))),
      el("h2", {}, "Look up a recipient"), el("div", { class: "panel" }, form, out));
  }

  const LIVE_TYPES = [
    ["message.delivered", "Delivered"], ["message.opened", "Opens"], ["link.clicked", "Clicks"],
    ["message.bounced", "Bounces"], ["message.complained", "Complaints"],
  ];

  async function livePage() {
    loading("the live view");
    const counts = el("dl", { class: "cards", id: "live-counts" });
    const feed = el("ul", { class: "feed", id: "live-feed" });
    const stamp = el("p", { class: "note", id: "live-updated", role: "status" });
    const draw = (l) => {
      counts.replaceChildren(...LIVE_TYPES.map(([type, label]) => card(label, num(l.counts[type] || 0))));
      feed.replaceChildren(...(l.recent.length ? l.recent.map((e) => el("li", {},
        el("time", { datetime: e.time }, new Date(e.time).toLocaleTimeString()),
        el("strong", {}, e.type), el("span", {}, e.campaign_id || "(no campaign)"),
        el("span", {}, e.recipient_id || ""),
        e.verdict ? el("span", { class: e.verdict === "human" ? "human" : "machine" }, `${e.verdict}${e.reason ? ` (${e.reason})` : ""}`) : null))
        : [el("li", {}, "Nothing in the last minutes.")]));
      stamp.textContent = `Last ${l.minutes} minutes, updated ${new Date().toLocaleTimeString()}.`;
    };
    const first = await api("/v1/live");
    show(el("h1", {}, "Live"), counts, el("h2", {}, "Recent opens, clicks and bounces"), el("div", { class: "panel" }, feed), stamp);
    draw(first);
    timers.push(setInterval(async () => {
      try { draw(await api("/v1/live")); } catch (e) { stamp.textContent = `Not refreshed: ${e.message}`; }
    }, 3000));
  }

  // ---- routing ----------------------------------------------------------------------
  async function route() {
    timers.forEach(clearInterval);
    timers = [];
    const hash = location.hash.replace(/^#/, "") || "/";
    const [path, query] = hash.split("?");
    const params = new URLSearchParams(query || "");
    const parts = path.split("/").filter(Boolean);
    const section = parts[0] || "campaigns";
    document.querySelectorAll("#nav a").forEach((a) => {
      if ((a.dataset.section === section) || (section === "campaign" && a.dataset.section === "campaigns")) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    });
    const retry = () => navigate();
    try {
      if (!session) session = await api("/v1/session");
      if (session.campaign && (section !== "campaign" || decodeURIComponent(parts[1] || "") !== session.campaign) && section !== "live") {
        location.replace(`#/campaign/${enc(session.campaign)}`);
        return;
      }
      if (section === "campaign" && parts[1]) await campaignPage(decodeURIComponent(parts[1]), params);
      else if (section === "deliverability") await deliverabilityPage();
      else if (section === "audience") await audiencePage();
      else if (section === "live") await livePage();
      else await campaignsPage();
      document.title = `Beacon · ${main.querySelector("h1") ? main.querySelector("h1").textContent : "Dashboard"}`;
    } catch (e) {
      show(failure(e, retry));
    }
  }

  function describeScope(s) {
    const scope = document.getElementById("scope");
    scope.textContent = s.campaign ? `${s.tenant} · campaign ${s.campaign}` : s.tenant;
    if (s.campaign) document.querySelectorAll("[data-tenant-only]").forEach((n) => n.remove());
  }

  // One page at a time: a route asked for while another renders waits for it, so a
  // slower, older page never replaces a newer one.
  let routing = Promise.resolve();
  const navigate = () => { routing = routing.then(route, route); };
  window.addEventListener("hashchange", navigate);
  document.addEventListener("DOMContentLoaded", async () => {
    try {
      session = await api("/v1/session");
      describeScope(session);
    } catch (e) {
      show(failure(e, () => location.reload()));
      return;
    }
    navigate();
  });
})();
