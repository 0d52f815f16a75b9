//! The Scheduler API's protocol: REST-JSON paths, methods and query parameters as the
//! Scheduler API reference gives them
//! (<https://docs.aws.amazon.com/scheduler/latest/APIReference/API_Operations.html>), with
//! errors as `x-amzn-errortype` and a `{"Message"}` body
//! (<https://docs.aws.amazon.com/scheduler/latest/APIReference/CommonErrors.html>):
//!
//! | operation | request |
//! |---|---|
//! | CreateSchedule | `POST /schedules/{Name}` |
//! | GetSchedule | `GET /schedules/{Name}?groupName=` |
//! | UpdateSchedule | `PUT /schedules/{Name}` |
//! | DeleteSchedule | `DELETE /schedules/{Name}?clientToken=&groupName=` |
//! | ListSchedules | `GET /schedules?MaxResults=&NamePrefix=&NextToken=&ScheduleGroup=&State=` |
//! | CreateScheduleGroup | `POST /schedule-groups/{Name}` |
//! | GetScheduleGroup | `GET /schedule-groups/{Name}` |
//! | DeleteScheduleGroup | `DELETE /schedule-groups/{Name}?clientToken=` |
//! | ListScheduleGroups | `GET /schedule-groups?MaxResults=&NamePrefix=&NextToken=` |
//! | TagResource | `POST /tags/{ResourceArn}` |
//! | UntagResource | `DELETE /tags/{ResourceArn}?TagKeys=` |
//! | ListTagsForResource | `GET /tags/{ResourceArn}` |
//!
//! Requests are not authenticated.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::model::{GroupRequest, ScheduleRequest, TagRequest};
use super::{ApiError, ListQuery, SchedulerApi};

/// The Scheduler API's routes, to merge with the emulator's other routers.
pub fn router(api: Arc<SchedulerApi>) -> Router {
    Router::new()
        .route(
            "/schedules/{name}",
            get(get_schedule)
                .post(create_schedule)
                .put(update_schedule)
                .delete(delete_schedule),
        )
        .route("/schedules", get(list_schedules))
        .route(
            "/schedule-groups/{name}",
            get(get_group).post(create_group).delete(delete_group),
        )
        .route("/schedule-groups", get(list_groups))
        .route(
            "/tags/{arn}",
            get(list_tags).post(tag_resource).delete(untag_resource),
        )
        .with_state(api)
}

type Pairs = Query<Vec<(String, String)>>;

/// The divergence row of the targets CreateSchedule and UpdateSchedule accept.
const TARGETS_DIVERGENCE: &str = "scheduler-api-targets";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::json!({ "Message": self.message });
        let mut response = (status, axum::Json(body)).into_response();
        response.headers_mut().insert(
            "x-amzn-errortype",
            HeaderValue::from_static(self.code.name()),
        );
        response
    }
}

fn answer(operation: &'static str, result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(body) => {
            tracing::debug!(operation, "scheduler request");
            axum::Json(body).into_response()
        }
        Err(e) => {
            tracing::debug!(operation, code = e.code.name(), message = %e.message, "scheduler request refused");
            e.into_response()
        }
    }
}

fn body<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::validation(format!("The request body is not valid: {e}")))
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn list_query(pairs: &[(String, String)]) -> Result<ListQuery, ApiError> {
    let max_results = param(pairs, "MaxResults")
        .map(|m| {
            m.parse::<i64>()
                .map_err(|_| ApiError::validation(format!("Invalid MaxResults {m}.")))
        })
        .transpose()?;
    let owned = |name| param(pairs, name).map(str::to_owned);
    Ok(ListQuery {
        name_prefix: owned("NamePrefix"),
        state: owned("State"),
        group: owned("ScheduleGroup"),
        max_results,
        next_token: owned("NextToken"),
    })
}

async fn create_schedule(
    State(api): State<Arc<SchedulerApi>>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Response {
    crate::divergence::announce_once(TARGETS_DIVERGENCE);
    let result = body::<ScheduleRequest>(&bytes).and_then(|r| api.create_schedule(&name, r));
    answer("CreateSchedule", result)
}

async fn update_schedule(
    State(api): State<Arc<SchedulerApi>>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Response {
    crate::divergence::announce_once(TARGETS_DIVERGENCE);
    let result = body::<ScheduleRequest>(&bytes).and_then(|r| api.update_schedule(&name, r));
    answer("UpdateSchedule", result)
}

async fn get_schedule(
    State(api): State<Arc<SchedulerApi>>,
    Path(name): Path<String>,
    Query(pairs): Pairs,
) -> Response {
    let result = api.get_schedule(&name, param(&pairs, "groupName"));
    answer("GetSchedule", result)
}

async fn delete_schedule(
    State(api): State<Arc<SchedulerApi>>,
    Path(name): Path<String>,
    Query(pairs): Pairs,
) -> Response {
    let result = api.delete_schedule(&name, param(&pairs, "groupName"));
    answer("DeleteSchedule", result)
}

async fn list_schedules(State(api): State<Arc<SchedulerApi>>, Query(pairs): Pairs) -> Response {
    let result = list_query(&pairs).and_then(|q| api.list_schedules(&q));
    answer("ListSchedules", result)
}

async fn create_group(
    State(api): State<Arc<SchedulerApi>>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Response {
    let result = body::<GroupRequest>(&bytes).and_then(|r| api.create_group(&name, r));
    answer("CreateScheduleGroup", result)
}

async fn get_group(State(api): State<Arc<SchedulerApi>>, Path(name): Path<String>) -> Response {
    answer("GetScheduleGroup", api.get_group(&name))
}

async fn delete_group(State(api): State<Arc<SchedulerApi>>, Path(name): Path<String>) -> Response {
    answer("DeleteScheduleGroup", api.delete_group(&name))
}

async fn list_groups(State(api): State<Arc<SchedulerApi>>, Query(pairs): Pairs) -> Response {
    let result = list_query(&pairs).and_then(|q| api.list_groups(&q));
    answer("ListScheduleGroups", result)
}

async fn tag_resource(
    State(api): State<Arc<SchedulerApi>>,
    Path(arn): Path<String>,
    bytes: Bytes,
) -> Response {
    let result = body::<TagRequest>(&bytes).and_then(|r| api.tag_resource(&arn, &r.tags));
    answer("TagResource", result)
}

async fn untag_resource(
    State(api): State<Arc<SchedulerApi>>,
    Path(arn): Path<String>,
    Query(pairs): Pairs,
) -> Response {
    let keys: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "TagKeys")
        .map(|(_, v)| v.clone())
        .collect();
    answer("UntagResource", api.untag_resource(&arn, &keys))
}

async fn list_tags(State(api): State<Arc<SchedulerApi>>, Path(arn): Path<String>) -> Response {
    answer("ListTagsForResource", api.list_tags(&arn))
}
