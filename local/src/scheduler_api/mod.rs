//! scheduler_api: the EventBridge Scheduler API on the emulator's endpoint (REST-JSON, as
//! aws-sdk-scheduler and `aws scheduler --endpoint-url` call it), whose schedules the
//! template's [`ScheduleRunner`] runs: same firing, flexible windows, retries, dead-letter
//! queues and asynchronous invocations as the template's schedules.
//!
//! Layout: [`routes`] is the protocol (paths, methods, query parameters, error shapes),
//! [`model`] the bodies and what is kept, [`validation`] AWS's checks of a request,
//! [`persistence`] the journal in the state dir. [`SchedulerApi`] here holds the state and runs
//! each operation: validate, hand the runner the schedule, journal the change, and only then
//! change what it serves, undoing the runner's part if the change cannot be journaled.
//!
//! Restarts: a one-time schedule is written as completed when its occurrence starts, before
//! it is delivered, so a restart (even after `kill -9`) never fires it again; a kill in the
//! instant between the two loses that occurrence rather than sending it twice. One whose time
//! passed while the emulator was down fires late, once, at the next start.
//!
//! Name space: the template's Scheduler schedules are in group `default` with the API's;
//! GetSchedule and ListSchedules show them, CreateSchedule cannot reuse their names, and
//! UpdateSchedule and DeleteSchedule refuse them with `ConflictException` ("Updating or
//! deleting the resource can cause an inconsistent state",
//! <https://docs.aws.amazon.com/scheduler/latest/APIReference/API_DeleteSchedule.html>): the
//! template owns them, as CloudFormation owns a stack's, and would bring them back at the
//! next start. Legacy EventBridge rules are not schedules of this API.

pub mod model;
pub mod persistence;
pub mod routes;
pub mod validation;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::clock::SharedClock;
use crate::schedule::runner::{RunnerConfig, ScheduleRunner};
use crate::template::{ScheduleKind, Template};
use model::{
    DEFAULT_GROUP, GroupRequest, ScheduleRequest, SchedulerState, StoredGroup, StoredSchedule, Tag,
    epoch,
};
use persistence::{Change, Store, StoreError};

/// Most items of one ListSchedules or ListScheduleGroups page.
const MAX_RESULTS: usize = 100;

/// The Scheduler API's error codes, with their HTTP statuses
/// (<https://docs.aws.amazon.com/scheduler/latest/APIReference/CommonErrors.html>).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 400: the request breaks a rule.
    Validation,
    /// 404: no such schedule, group or resource.
    ResourceNotFound,
    /// 409: the name is taken, or the change would leave an inconsistent state.
    Conflict,
    /// 500: the state could not be written.
    InternalServer,
}

impl ErrorCode {
    /// The `x-amzn-errortype` of the code.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::Validation => "ValidationException",
            ErrorCode::ResourceNotFound => "ResourceNotFoundException",
            ErrorCode::Conflict => "ConflictException",
            ErrorCode::InternalServer => "InternalServerException",
        }
    }

    /// Its HTTP status.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::Validation => 400,
            ErrorCode::ResourceNotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::InternalServer => 500,
        }
    }
}

/// An error of a Scheduler API operation, as AWS answers it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", .code.name())]
pub struct ApiError {
    /// Which error.
    pub code: ErrorCode,
    /// AWS's `Message`.
    pub message: String,
}

impl ApiError {
    /// A `ValidationException`.
    pub fn validation(message: impl Into<String>) -> Self {
        ApiError {
            code: ErrorCode::Validation,
            message: message.into(),
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            code: ErrorCode::ResourceNotFound,
            message: message.into(),
        }
    }

    fn conflict(message: impl Into<String>) -> Self {
        ApiError {
            code: ErrorCode::Conflict,
            message: message.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "scheduler state not written");
        ApiError {
            code: ErrorCode::InternalServer,
            message: e.to_string(),
        }
    }
}

/// Why the Scheduler API could not start.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerApiError {
    /// The state dir's journal could not be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The Scheduler API's state and operations; one per emulator.
pub struct SchedulerApi {
    state: Mutex<SchedulerState>,
    runner: ScheduleRunner,
    template: Template,
    clock: SharedClock,
    store: Option<Store>,
    region: String,
    account_id: String,
}

impl std::fmt::Debug for SchedulerApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulerApi")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl SchedulerApi {
    /// The API over `runner`, whose schedules' targets are `template`'s; with `state_dir`,
    /// its schedules are read from and written to [`persistence::FILE_NAME`] there, and the
    /// kept ones handed to the runner (a one-time schedule that already fired stays, disabled,
    /// and does not fire again).
    pub fn open(
        template: &Template,
        runner: ScheduleRunner,
        clock: SharedClock,
        state_dir: Option<&Path>,
        config: &RunnerConfig,
    ) -> Result<Arc<Self>, SchedulerApiError> {
        let (store, mut state) = match state_dir {
            Some(dir) => {
                let (store, state) = Store::open(dir)?;
                (Some(store), state)
            }
            None => (None, SchedulerState::default()),
        };
        let now = clock.now();
        let api = SchedulerApi {
            state: Mutex::new(SchedulerState::default()),
            runner,
            template: template.clone(),
            clock,
            store,
            region: config.region.clone(),
            account_id: config.account_id.clone(),
        };
        // `default` always exists; the template's groups exist as CloudFormation would have
        // made them (a kept group of that name, with its tags, stays as it is).
        for name in std::iter::once(DEFAULT_GROUP)
            .chain(template.schedule_groups.iter().map(String::as_str))
        {
            state
                .groups
                .entry(name.to_owned())
                .or_insert_with(|| api.group(name, now, BTreeMap::new()));
        }
        for schedules in state.schedules.values() {
            for kept in schedules.values() {
                api.run_kept(kept);
            }
        }
        let count: usize = state.schedules.values().map(BTreeMap::len).sum();
        tracing::info!(schedules = count, "scheduler api state loaded");
        *api.lock() = state;
        let api = Arc::new(api);
        let weak: Weak<SchedulerApi> = Arc::downgrade(&api);
        api.runner.on_complete(Arc::new(move |group, name| {
            if let Some(api) = weak.upgrade() {
                api.completed(group, name);
            }
        }));
        Ok(api)
    }

    fn lock(&self) -> MutexGuard<'_, SchedulerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn group_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:scheduler:{}:{}:schedule-group/{name}",
            self.region, self.account_id
        )
    }

    fn group(&self, name: &str, now: DateTime<Utc>, tags: BTreeMap<String, String>) -> StoredGroup {
        StoredGroup {
            name: name.to_owned(),
            arn: self.group_arn(name),
            creation_date: now,
            tags,
            client_token: None,
        }
    }

    /// Journals `change` (when there is a state dir), then applies it to `state`: a change
    /// that cannot be written is not made.
    fn save(&self, state: &mut SchedulerState, change: Change) -> Result<(), StoreError> {
        if let Some(store) = &self.store {
            store.append(&change)?;
        }
        state.apply(change);
        if let Some(store) = &self.store {
            store.compact_if_due(state);
        }
        Ok(())
    }

    /// Syncs the journal to disk; called on orderly shutdown.
    pub fn sync(&self) -> Result<(), StoreError> {
        match &self.store {
            Some(store) => store.sync(),
            None => Ok(()),
        }
    }

    /// The template's Scheduler schedule `name`, when `group` is the default group.
    fn template_schedule(&self, group: &str, name: &str) -> Option<&crate::template::ScheduleDef> {
        (group == DEFAULT_GROUP)
            .then(|| {
                self.template
                    .schedules
                    .iter()
                    .find(|s| s.kind == ScheduleKind::ScheduleV2 && s.name == name)
            })
            .flatten()
    }

    fn owned_by_template(name: &str) -> ApiError {
        ApiError::conflict(format!(
            "Schedule {name} is defined by the emulator's template; change it there."
        ))
    }

    fn no_group(group: &str) -> ApiError {
        ApiError::not_found(format!("Schedule group {group} does not exist."))
    }

    fn no_schedule(name: &str) -> ApiError {
        ApiError::not_found(format!("Schedule {name} does not exist."))
    }

    /// CreateSchedule: answers `{"ScheduleArn"}`. A retry with the same `ClientToken` and
    /// request answers the same ARN instead of `ConflictException`.
    pub fn create_schedule(&self, name: &str, request: ScheduleRequest) -> Result<Value, ApiError> {
        let group = validation::group_of(&request)?;
        let now = self.clock.now();
        let def = validation::schedule_def(name, &group, &request, &self.template, now)?;
        let mut state = self.lock();
        if !state.groups.contains_key(&group) {
            return Err(Self::no_group(&group));
        }
        if self.template_schedule(&group, name).is_some() {
            return Err(ApiError::conflict(format!(
                "Schedule {name} already exists (it is defined by the emulator's template)."
            )));
        }
        if let Some(existing) = state.schedules.get(&group).and_then(|s| s.get(name)) {
            let same_token = request.client_token.is_some()
                && existing.request.client_token == request.client_token;
            let mut asked = request.clone();
            asked.group_name = Some(group.clone());
            if same_token && existing.request == asked {
                return Ok(json!({ "ScheduleArn": existing.arn }));
            }
            return Err(ApiError::conflict(format!(
                "Schedule {name} already exists."
            )));
        }
        let mut request = request;
        request.group_name = Some(group.clone());
        let stored = StoredSchedule {
            name: name.to_owned(),
            group: group.clone(),
            arn: crate::schedule::schedule_arn(&self.region, &self.account_id, &group, name),
            request,
            creation_date: now,
            last_modification_date: now,
            completed: false,
        };
        let arn = stored.arn.clone();
        self.commit(&mut state, &group, name, Some(stored), Some(def), now)?;
        tracing::info!(group = %group, schedule = name, arn = %arn, "schedule created");
        Ok(json!({ "ScheduleArn": arn }))
    }

    /// UpdateSchedule: replaces every member of an existing schedule; answers
    /// `{"ScheduleArn"}`.
    pub fn update_schedule(&self, name: &str, request: ScheduleRequest) -> Result<Value, ApiError> {
        let group = validation::group_of(&request)?;
        let now = self.clock.now();
        let def = validation::schedule_def(name, &group, &request, &self.template, now)?;
        let mut state = self.lock();
        if self.template_schedule(&group, name).is_some() {
            return Err(Self::owned_by_template(name));
        }
        let existing = state
            .schedules
            .get(&group)
            .and_then(|s| s.get(name))
            .ok_or_else(|| Self::no_schedule(name))?
            .clone();
        let mut request = request;
        request.group_name = Some(group.clone());
        request.client_token = existing.request.client_token.clone();
        let stored = StoredSchedule {
            request,
            last_modification_date: now,
            completed: false,
            ..existing
        };
        let arn = stored.arn.clone();
        self.commit(&mut state, &group, name, Some(stored), Some(def), now)?;
        tracing::info!(group = %group, schedule = name, "schedule updated");
        Ok(json!({ "ScheduleArn": arn }))
    }

    /// UpdateSchedule with only the `State` changed (`ENABLED` or `DISABLED`): the dashboard's
    /// and `nightshift schedule enable|disable`'s switch for a schedule created through the
    /// API, journaled like any update.
    pub fn set_state(&self, name: &str, group: &str, enabled: bool) -> Result<Value, ApiError> {
        let mut request = self
            .lock()
            .schedules
            .get(group)
            .and_then(|s| s.get(name))
            .ok_or_else(|| Self::no_schedule(name))?
            .request
            .clone();
        request.state = Some(if enabled { "ENABLED" } else { "DISABLED" }.to_owned());
        request.group_name = Some(group.to_owned());
        self.update_schedule(name, request)
    }

    /// DeleteSchedule.
    pub fn delete_schedule(&self, name: &str, group: Option<&str>) -> Result<Value, ApiError> {
        let group = group.unwrap_or(DEFAULT_GROUP);
        validation::check_name("name", name)?;
        validation::check_name("groupName", group)?;
        let mut state = self.lock();
        if self.template_schedule(group, name).is_some() {
            return Err(Self::owned_by_template(name));
        }
        if !state
            .schedules
            .get(group)
            .is_some_and(|s| s.contains_key(name))
        {
            return Err(Self::no_schedule(name));
        }
        self.commit(&mut state, group, name, None, None, self.clock.now())?;
        tracing::info!(group, schedule = name, "schedule deleted");
        Ok(json!({}))
    }

    /// Puts `stored` (or removes the schedule when `None`) in the runner, the journal and the
    /// state, in that order, undoing the runner's change when the journal cannot be written.
    fn commit(
        &self,
        state: &mut SchedulerState,
        group: &str,
        name: &str,
        stored: Option<StoredSchedule>,
        def: Option<crate::template::ScheduleDef>,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        let previous = state
            .schedules
            .get(group)
            .and_then(|s| s.get(name))
            .cloned();
        let change = match stored {
            Some(schedule) => Change::PutSchedule {
                schedule: Box::new(schedule),
            },
            None => Change::DeleteSchedule {
                group: group.to_owned(),
                name: name.to_owned(),
            },
        };
        let runner_result = match def {
            Some(def) => self.runner.replace(def, group, now),
            None => {
                self.runner.remove(group, name);
                Ok(())
            }
        };
        runner_result.map_err(|e| ApiError::validation(e.to_string()))?;
        if let Err(e) = self.save(state, change) {
            self.runner.remove(group, name);
            if let Some(previous) = previous {
                self.run_kept(&previous);
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// Hands a kept schedule to the runner (at start, or back after a change that could not
    /// be written), disabled once it completed. One that no longer fits the template (its
    /// target or dead-letter queue is gone from it) stays readable but does not run: logged.
    fn run_kept(&self, kept: &StoredSchedule) {
        // Checked as at its last change: an `at` now past is kept all the same.
        let def = validation::schedule_def(
            &kept.name,
            &kept.group,
            &kept.request,
            &self.template,
            kept.last_modification_date,
        );
        let added = match def {
            Ok(mut def) => {
                def.enabled &= !kept.completed;
                self.runner
                    .add(def, &kept.group, kept.last_modification_date)
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.message),
        };
        if let Err(error) = added {
            tracing::warn!(group = %kept.group, schedule = %kept.name, %error, "kept schedule does not run");
        }
    }

    /// The runner started the last occurrence of schedule `name`: mark it done, or delete it
    /// when its `ActionAfterCompletion` is `DELETE`.
    fn completed(&self, group: &str, name: &str) {
        let mut state = self.lock();
        let Some(kept) = state.schedules.get(group).and_then(|s| s.get(name)) else {
            return;
        };
        let delete = kept.request.action_after_completion.as_deref() == Some("DELETE");
        let change = if delete {
            self.runner.remove(group, name);
            Change::DeleteSchedule {
                group: group.to_owned(),
                name: name.to_owned(),
            }
        } else {
            Change::PutSchedule {
                schedule: Box::new(StoredSchedule {
                    completed: true,
                    ..kept.clone()
                }),
            }
        };
        if let Err(e) = self.save(&mut state, change) {
            tracing::error!(group, schedule = name, error = %e, "schedule completion not written");
        }
        tracing::info!(
            group,
            schedule = name,
            deleted = delete,
            "schedule completed"
        );
    }

    /// GetSchedule: the API's schedules, and the template's in the default group.
    pub fn get_schedule(&self, name: &str, group: Option<&str>) -> Result<Value, ApiError> {
        let group = group.unwrap_or(DEFAULT_GROUP);
        validation::check_name("name", name)?;
        validation::check_name("groupName", group)?;
        if let Some(def) = self.template_schedule(group, name) {
            return Ok(self.template_output(def));
        }
        let state = self.lock();
        if !state.groups.contains_key(group) {
            return Err(Self::no_group(group));
        }
        state
            .schedules
            .get(group)
            .and_then(|s| s.get(name))
            .map(StoredSchedule::to_output)
            .ok_or_else(|| Self::no_schedule(name))
    }

    fn template_output(&self, def: &crate::template::ScheduleDef) -> Value {
        let stats = self.runner.stats_in_group(DEFAULT_GROUP, &def.name);
        let target_arn = match &def.target {
            crate::template::ScheduleTarget::Function(id) => {
                self.template.function(id).map(|f| f.arn.clone())
            }
            crate::template::ScheduleTarget::Queue { queue, .. } => {
                self.template.queue(queue).map(|q| q.arn.clone())
            }
        };
        model::without_nulls(json!({
            "Name": def.name,
            "GroupName": DEFAULT_GROUP,
            "Arn": crate::schedule::schedule_arn(&self.region, &self.account_id, DEFAULT_GROUP, &def.name),
            "ScheduleExpression": def.expression,
            "ScheduleExpressionTimezone": def.timezone,
            "State": if def.enabled { "ENABLED" } else { "DISABLED" },
            "FlexibleTimeWindow": match def.flexible_window_minutes {
                Some(m) => json!({"Mode": "FLEXIBLE", "MaximumWindowInMinutes": m}),
                None => json!({"Mode": "OFF"}),
            },
            "Target": {"Arn": target_arn, "Input": def.input},
            "NextInvocation": stats.and_then(|s| s.next_fire).map(epoch),
        }))
    }

    /// ListSchedules: by group then name, filtered by `NamePrefix`, `State` and group, at
    /// most `MaxResults` (1..=100) a page; `NextToken` is where the next page starts.
    pub fn list_schedules(&self, query: &ListQuery) -> Result<Value, ApiError> {
        if let Some(prefix) = &query.name_prefix {
            validation::check_name("namePrefix", prefix)?;
        }
        if let Some(group) = &query.group {
            validation::check_name("groupName", group)?;
        }
        let state_filter = match query.state.as_deref() {
            None => None,
            Some(s @ ("ENABLED" | "DISABLED")) => Some(s),
            Some(other) => {
                return Err(ApiError::validation(format!(
                    "1 validation error detected: Value '{other}' at 'state' failed to satisfy \
                     constraint: Member must satisfy enum value set: [ENABLED, DISABLED]"
                )));
            }
        };
        let mut all: Vec<(String, String, Value)> = Vec::new();
        for def in self
            .template
            .schedules
            .iter()
            .filter(|s| s.kind == ScheduleKind::ScheduleV2)
        {
            let out = self.template_output(def);
            all.push((DEFAULT_GROUP.to_owned(), def.name.clone(), out));
        }
        {
            let state = self.lock();
            for (group, schedules) in &state.schedules {
                for (name, s) in schedules {
                    all.push((group.clone(), name.clone(), s.to_output()));
                }
            }
        }
        all.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        let items: Vec<(String, Value)> = all
            .into_iter()
            .filter(|(group, name, out)| {
                query.group.as_ref().is_none_or(|g| g == group)
                    && query
                        .name_prefix
                        .as_ref()
                        .is_none_or(|p| name.starts_with(p.as_str()))
                    && state_filter.is_none_or(|s| out["State"] == s)
            })
            .map(|(group, name, out)| {
                let summary = json!({
                    "Arn": out["Arn"],
                    "Name": name,
                    "GroupName": group,
                    "State": out["State"],
                    "CreationDate": out.get("CreationDate"),
                    "LastModificationDate": out.get("LastModificationDate"),
                    "Target": {"Arn": out["Target"]["Arn"]},
                });
                (format!("{group}/{name}"), model::without_nulls(summary))
            })
            .collect();
        let (page, next) = paginate(items, query.max_results, query.next_token.as_deref())?;
        Ok(model::without_nulls(
            json!({"Schedules": page, "NextToken": next}),
        ))
    }

    /// CreateScheduleGroup: answers `{"ScheduleGroupArn"}`; a retry with the same
    /// `ClientToken` answers the same ARN instead of `ConflictException`.
    pub fn create_group(&self, name: &str, request: GroupRequest) -> Result<Value, ApiError> {
        validation::check_name("name", name)?;
        let tags = tag_map(&request.tags)?;
        let mut state = self.lock();
        if let Some(existing) = state.groups.get(name) {
            // A retry of the request that created it (same ClientToken) gets the same answer.
            if request.client_token.is_some() && existing.client_token == request.client_token {
                return Ok(json!({ "ScheduleGroupArn": existing.arn }));
            }
            return Err(ApiError::conflict(format!(
                "Schedule group {name} already exists."
            )));
        }
        let mut group = self.group(name, self.clock.now(), tags);
        group.client_token = request.client_token;
        let arn = group.arn.clone();
        self.save(&mut state, Change::PutGroup { group })?;
        tracing::info!(group = name, "schedule group created");
        Ok(json!({ "ScheduleGroupArn": arn }))
    }

    /// GetScheduleGroup.
    pub fn get_group(&self, name: &str) -> Result<Value, ApiError> {
        validation::check_name("name", name)?;
        self.lock()
            .groups
            .get(name)
            .map(StoredGroup::to_output)
            .ok_or_else(|| Self::no_group(name))
    }

    /// DeleteScheduleGroup: deletes the group and its schedules; `default` cannot be deleted.
    pub fn delete_group(&self, name: &str) -> Result<Value, ApiError> {
        validation::check_name("name", name)?;
        if name == DEFAULT_GROUP {
            return Err(ApiError::validation(
                "The default schedule group cannot be deleted.",
            ));
        }
        let mut state = self.lock();
        if !state.groups.contains_key(name) {
            return Err(Self::no_group(name));
        }
        let removed: Vec<String> = state
            .schedules
            .get(name)
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default();
        self.save(
            &mut state,
            Change::DeleteGroup {
                name: name.to_owned(),
            },
        )?;
        for schedule in &removed {
            self.runner.remove(name, schedule);
        }
        tracing::info!(
            group = name,
            schedules = removed.len(),
            "schedule group deleted"
        );
        Ok(json!({}))
    }

    /// ListScheduleGroups: by name, filtered by `NamePrefix`, paginated as ListSchedules.
    pub fn list_groups(&self, query: &ListQuery) -> Result<Value, ApiError> {
        if let Some(prefix) = &query.name_prefix {
            validation::check_name("namePrefix", prefix)?;
        }
        let items: Vec<(String, Value)> = self
            .lock()
            .groups
            .values()
            .filter(|g| {
                query
                    .name_prefix
                    .as_ref()
                    .is_none_or(|p| g.name.starts_with(p.as_str()))
            })
            .map(|g| (g.name.clone(), g.to_output()))
            .collect();
        let (page, next) = paginate(items, query.max_results, query.next_token.as_deref())?;
        Ok(model::without_nulls(
            json!({"ScheduleGroups": page, "NextToken": next}),
        ))
    }

    /// The group an ARN names (only schedule groups carry tags).
    fn tagged_group<'a>(&self, state: &'a SchedulerState, arn: &str) -> Result<&'a str, ApiError> {
        state
            .groups
            .values()
            .find(|g| g.arn == arn)
            .map(|g| g.name.as_str())
            .ok_or_else(|| ApiError::not_found(format!("Resource {arn} does not exist.")))
    }

    /// TagResource.
    pub fn tag_resource(&self, arn: &str, tags: &[Tag]) -> Result<Value, ApiError> {
        let tags = tag_map(tags)?;
        let mut state = self.lock();
        let name = self.tagged_group(&state, arn)?.to_owned();
        let mut group = state.groups[&name].clone();
        group.tags.extend(tags);
        self.save(&mut state, Change::PutGroup { group })?;
        Ok(json!({}))
    }

    /// UntagResource.
    pub fn untag_resource(&self, arn: &str, keys: &[String]) -> Result<Value, ApiError> {
        let mut state = self.lock();
        let name = self.tagged_group(&state, arn)?.to_owned();
        let mut group = state.groups[&name].clone();
        for key in keys {
            group.tags.remove(key);
        }
        self.save(&mut state, Change::PutGroup { group })?;
        Ok(json!({}))
    }

    /// ListTagsForResource.
    pub fn list_tags(&self, arn: &str) -> Result<Value, ApiError> {
        let state = self.lock();
        let name = self.tagged_group(&state, arn)?;
        let tags: Vec<Tag> = state.groups[name]
            .tags
            .iter()
            .map(|(key, value)| Tag {
                key: key.clone(),
                value: value.clone(),
            })
            .collect();
        Ok(json!({ "Tags": tags }))
    }
}

/// The query of ListSchedules and ListScheduleGroups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// `NamePrefix`.
    pub name_prefix: Option<String>,
    /// `State` (schedules only).
    pub state: Option<String>,
    /// `ScheduleGroup` (schedules only).
    pub group: Option<String>,
    /// `MaxResults`, 1..=100.
    pub max_results: Option<i64>,
    /// `NextToken` of the previous page.
    pub next_token: Option<String>,
}

/// One page of `items` (sorted by key): those from `token`'s key on, at most `max`; the
/// token of the next page when there is one.
fn paginate(
    items: Vec<(String, Value)>,
    max: Option<i64>,
    token: Option<&str>,
) -> Result<(Vec<Value>, Option<String>), ApiError> {
    let max = match max {
        None => MAX_RESULTS,
        Some(m) if (1..=MAX_RESULTS as i64).contains(&m) => m as usize,
        Some(m) => {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{m}' at 'maxResults' failed to satisfy \
                 constraint: Member must have value between 1 and {MAX_RESULTS}"
            )));
        }
    };
    let start = match token {
        None => 0,
        Some(t) => {
            use base64::Engine as _;
            let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| ApiError::validation(format!("Invalid NextToken {t}.")))?;
            items.partition_point(|(k, _)| *k < key)
        }
    };
    let mut rest = items.into_iter().skip(start);
    let page: Vec<(String, Value)> = rest.by_ref().take(max).collect();
    let next = rest.next().map(|(key, _)| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
    });
    Ok((page.into_iter().map(|(_, v)| v).collect(), next))
}

/// Tags as a map, checked: keys 1..=128 characters, values at most 256, at most 200 tags
/// (<https://docs.aws.amazon.com/scheduler/latest/APIReference/API_Tag.html>).
fn tag_map(tags: &[Tag]) -> Result<BTreeMap<String, String>, ApiError> {
    if tags.len() > 200 {
        return Err(ApiError::validation(
            "1 validation error detected: Value at 'tags' failed to satisfy constraint: Member \
             must have length less than or equal to 200",
        ));
    }
    for tag in tags {
        if tag.key.is_empty() || tag.key.chars().count() > 128 {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{}' at 'tags.member.key' failed to satisfy \
                 constraint: Member must have length between 1 and 128",
                tag.key
            )));
        }
        if tag.value.chars().count() > 256 {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value at 'tags.member.value' of tag {} failed to \
                 satisfy constraint: Member must have length between 0 and 256",
                tag.key
            )));
        }
    }
    Ok(tags
        .iter()
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect())
}
