//! stub
use std::sync::Arc;
use super::reply::Reply;
use super::request::Req;
use super::CrmDouble;
pub(crate) fn handle(_d: &Arc<CrmDouble>, _r: &Req) -> Reply { Reply::new(http::StatusCode::NOT_FOUND) }
pub(crate) fn contact(_d: &CrmDouble, _i: u64) -> serde_json::Value { serde_json::Value::Null }
