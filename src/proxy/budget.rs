//! Phases 4 and 7, budget and charge: the export budget of a governed read.
//!
//! Phase 4 (precheck) runs after the request is built and before anything is forwarded: an
//! empty budget refuses without touching the CRM, otherwise the page the request asks for is
//! shrunk to what may still be delivered (it may change the request's query and headers).
//! Phase 7 (charge) runs after the response was filtered, with the records the engine
//! actually delivered: all or nothing, so a response larger than what is left is refused
//! whole, never silently truncated (logged as `rate_limited`). Streamed bodies are charged
//! chunk by chunk instead (`stream.rs`). Writes export nothing and are not charged. Errors:
//! `budget-exhausted` (429, or the CRM's own throttle shape), `budget-page-over-cap` (403),
//! `budget-store-unavailable` (503). The budgets themselves are `crate::budget`.

use http::Request;

use super::{Ctx, Governed};
use crate::body::ProxyBody;
use crate::budget::{cap_page, BudgetKey, Capped, Exhausted, PageKnob};
use crate::caller::Caller;
use crate::dialect::Dialect;
use crate::error::ProxyError;
use crate::policy::{self, ExportBudget, OpKind, Operation, PolicySet, RouteClass};
use crate::state::State;

/// The budget that governs one exchange: a governed read of a purpose with an
/// `export_budget`.
#[derive(Debug, Clone)]
pub struct BudgetScope {
    /// Whose budget: the app and the purpose.
    pub key: BudgetKey,
    pub budget: ExportBudget,
    /// The route class, for class sub-limits.
    pub class: RouteClass,
    /// A `shadow` purpose is counted and logged, never refused or capped.
    pub shadow: bool,
    /// The dialect, for capping page sizes and shaping refusals.
    pub dialect: Dialect,
}

impl BudgetScope {
    /// The scope of `op` for `caller`, when there is one (reads of a purpose with a budget).
    pub fn of(op: &Operation, caller: &Caller, policy: &PolicySet) -> Option<BudgetScope> {
        if op.op() != OpKind::Read {
            return None;
        }
        let purpose = policy.purpose(&caller.purpose)?;
        let budget = purpose.export_budget.clone()?;
        Some(BudgetScope {
            key: BudgetKey::new(caller.app.clone(), caller.purpose.clone()),
            budget,
            class: op.class(),
            shadow: purpose.mode == policy::Mode::Shadow,
            dialect: op.dialect(),
        })
    }

    /// The budget of a purpose an incident throttled (`on_anomaly: throttle`): every limit
    /// times `factor` (at least one record), counted in a bucket of its own so the shrunk
    /// limit does not inherit what the normal bucket has left.
    pub fn throttled(mut self, factor: f64) -> BudgetScope {
        fn shrink(b: &mut ExportBudget, factor: f64) {
            let scale = |n: u64| ((n as f64 * factor).floor() as u64).max(1);
            if b.records > 0 {
                b.records = scale(b.records);
            }
            b.burst = b.burst.map(scale);
            for (_, c) in &mut b.per_class {
                shrink(c, factor);
            }
        }
        shrink(&mut self.budget, factor);
        self.key.purpose = format!("{}#throttled", self.key.purpose).into();
        self
    }

    /// A refusal of this budget, in the configured style (`budgets.refusal`).
    fn refusal(&self, state: &State, exhausted: Exhausted) -> ProxyError {
        ProxyError::BudgetExhausted {
            exhausted: Box::new(exhausted),
            dialect: self.dialect,
            style: state.config.refusal_style,
        }
    }
}

/// Phase 4. Is anything left? And ask only for what may still be delivered, so pages fit
/// instead of being refused.
pub async fn precheck(
    state: &State,
    ctx: &mut Ctx<Governed>,
    req: &mut Request<ProxyBody>,
) -> Result<(), ProxyError> {
    let Some(scope) = &ctx.flow.budget else {
        return Ok(());
    };
    let allowance = state
        .budgets
        .precheck(&scope.key, &scope.budget, scope.class, scope.shadow)
        .await
        .map_err(|e| scope.refusal(state, e))?;
    let op = &ctx.flow.op;
    let csv = op.format() == policy::BodyFormat::Csv;
    let knob = PageKnob::of(
        scope.dialect,
        req.method(),
        &ctx.route.path,
        csv,
        op.tunnel().is_some(),
    );
    if let Some(knob) = knob.filter(|_| !scope.shadow && scope.class != RouteClass::Single) {
        let largest = crate::budget::largest_page(&scope.budget, scope.class);
        let query = req.uri().query().map(str::to_string);
        match cap_page(
            knob,
            req.headers_mut(),
            query.as_deref(),
            allowance.remaining,
            largest,
        ) {
            Capped::Unchanged => {}
            Capped::Lowered(new_query) => set_query(req, new_query),
            // less left than the floor: when the floor fits again, not a one-record crawl
            Capped::Floor(floor) => {
                let refused = state
                    .budgets
                    .precheck_n(&scope.key, &scope.budget, scope.class, floor, false)
                    .await
                    .map_err(|e| scope.refusal(state, e))?;
                // refilled in between: the floor fits now, ask for it
                let query = req.uri().query().map(str::to_string);
                if let Capped::Lowered(q) = cap_page(
                    knob,
                    req.headers_mut(),
                    query.as_deref(),
                    refused.remaining,
                    largest,
                ) {
                    set_query(req, q);
                }
            }
        }
    }
    ctx.flow.allowance = Some(allowance);
    Ok(())
}

/// Replaces the request's query string (`None`: leaves it as it is).
fn set_query(req: &mut Request<ProxyBody>, new_query: Option<String>) {
    let Some(new_query) = new_query else {
        return;
    };
    let path = req.uri().path();
    let target = if new_query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{new_query}")
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = target.parse().ok();
    if let Ok(uri) = http::Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
}

/// Phase 7. Charges the records the engine delivered.
pub async fn charge(state: &State, ctx: &mut Ctx<Governed>) -> Result<(), ProxyError> {
    let Some(scope) = &ctx.flow.budget else {
        return Ok(());
    };
    let records = ctx.flow.received.as_ref().map_or(0, |b| b.outcome.records);
    if records == 0 {
        return Ok(());
    }
    let allowance = state
        .budgets
        .charge(
            &scope.key,
            &scope.budget,
            scope.class,
            records,
            scope.shadow,
        )
        .await
        .map_err(|e| scope.refusal(state, e))?;
    ctx.flow.allowance = Some(allowance);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttled_budget_shrinks_every_limit_in_a_bucket_of_its_own() {
        let scope = BudgetScope {
            key: BudgetKey::new("bi-export", "analytics"),
            budget: ExportBudget {
                records: 1000,
                per: std::time::Duration::from_secs(3600),
                burst: Some(100),
                per_class: vec![(
                    RouteClass::List,
                    ExportBudget {
                        records: 5,
                        per: std::time::Duration::from_secs(60),
                        burst: None,
                        per_class: Vec::new(),
                    },
                )],
            },
            class: RouteClass::List,
            shadow: false,
            dialect: Dialect::Salesforce,
        };
        let t = scope.throttled(0.1);
        assert_eq!(t.budget.records, 100);
        assert_eq!(t.budget.burst, Some(10));
        assert_eq!(t.budget.per_class[0].1.records, 1, "at least one record");
        assert_eq!(&*t.key.purpose, "analytics#throttled");
    }
}
