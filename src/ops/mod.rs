//! The engine: kloud's pipeline as code, for every front end (the CLI, `kloud serve`).
//!
//! [`plan()`] is load's output → (refresh) → snapshot → used addresses → diff;
//! [`apply()`] is lock → freshness → hosts → integrations. Both report progress as typed
//! [`events::Event`]s to an [`events::Events`] listener and return plain results; they never
//! print and never exit. Errors are [`OpsError`]s carrying stable codes and help, rendered by
//! miette at the edge. The compute drivers are injected ([`crate::apply::DriverSet`]), so the
//! whole operation runs in tests against a fake.

pub mod apply;
pub mod error;
pub mod events;
pub mod plan;

pub use apply::{
    apply, converge, ApplyOutcome, ApplyRequest, ConvergeOutcome, ConvergeRequest,
    IntegrationOutcome,
};
pub use error::OpsError;
pub use events::{Event, Events};
pub use plan::{plan, PlanRequest};
