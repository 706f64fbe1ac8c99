use prost::Message;

use crate::google_rpc::Status;
use crate::v1::Error;

const ERROR_TYPE_URL: &str = "type.googleapis.com/zdb.v1.Error";

/// Packs a typed error the way gRPC's rich error model expects, for
/// `tonic::Status::with_details`.
pub fn encode_error_details(code: i32, message: &str, error: &Error) -> Vec<u8> {
    Status {
        code,
        message: message.to_owned(),
        details: vec![prost_types::Any {
            type_url: ERROR_TYPE_URL.to_owned(),
            value: error.encode_to_vec(),
        }],
    }
    .encode_to_vec()
}

/// The typed error inside a failed call's status details, if there is one.
pub fn decode_error_details(details: &[u8]) -> Option<Error> {
    let status = Status::decode(details).ok()?;
    status
        .details
        .iter()
        .find(|any| any.type_url == ERROR_TYPE_URL)
        .and_then(|any| Error::decode(any.value.as_slice()).ok())
}
