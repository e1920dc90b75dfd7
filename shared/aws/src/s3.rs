//! The S3 client every S3 adapter (the lake, report files) is built with.

/// An S3 client for `aws`. Against an emulator (an endpoint override, as
/// `AWS_ENDPOINT_URL` sets), path-style addressing, and checksums only where S3
/// requires them, which the emulator handles.
pub fn client(aws: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let mut conf = aws_sdk_s3::config::Builder::from(aws);
    if aws.endpoint_url().is_some() {
        conf = conf
            .force_path_style(true)
            .request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            )
            .response_checksum_validation(
                aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
            );
    }
    aws_sdk_s3::Client::from_conf(conf.build())
}
