//! The [`Invoker`] over the runtime's pool: how the mappings, schedules and the async queue
//! reach the real function binaries. It lives here, not in `crate::invoker`, so that the
//! invoker module stays a leaf and the runtime depends on it, never the reverse.

use futures::FutureExt;

use super::Runtime;
use crate::invoker::{BoxFuture, InvokeError, InvokeRequest, InvokeResponse, Invoker, Slot};

/// The real function binaries, run by a [`Runtime`] pool.
#[derive(Clone)]
pub struct ProcessInvoker {
    runtime: Runtime,
}

impl ProcessInvoker {
    /// Invokes through `runtime`.
    pub fn new(runtime: Runtime) -> Self {
        Self { runtime }
    }

    /// The runtime behind this invoker.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }
}

impl Invoker for ProcessInvoker {
    fn invoke(&self, req: InvokeRequest) -> BoxFuture<'_, Result<InvokeResponse, InvokeError>> {
        self.runtime.invoke(req).boxed()
    }

    fn reserve<'a>(&'a self, function: &'a str) -> BoxFuture<'a, Result<Slot, InvokeError>> {
        self.runtime.reserve(function).boxed()
    }

    fn invoke_in(
        &self,
        slot: Slot,
        req: InvokeRequest,
    ) -> BoxFuture<'_, Result<InvokeResponse, InvokeError>> {
        self.runtime.invoke_in(slot, req).boxed()
    }
}
