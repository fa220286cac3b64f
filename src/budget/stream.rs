//! Charging a streamed body as it flows.
//!
//! A streamed response (bulk CSV) cannot be refused whole after the fact: its first bytes are
//! already on their way. So each chunk of rows is charged before it is released, and the
//! first chunk the budget cannot pay for means the caller must *abort* the stream (RST_STREAM
//! or connection close, DESIGN.md §3), never end it cleanly short: a clean short body would
//! look like a complete export to the app.

use super::{Allowance, BudgetKey, Budgets, Exhausted, Scopes};
use crate::policy::{ExportBudget, RouteClass};

/// What to do with the chunk just charged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamVerdict {
    /// Paid for: release the chunk.
    Continue(Allowance),
    /// Not paid for: drop the chunk and abort the stream; log `rate_limited`.
    Abort(Exhausted),
}

/// The charger of one streamed response (from [`Budgets::stream`]).
#[derive(Debug)]
pub struct StreamCharge {
    budgets: Budgets,
    key: BudgetKey,
    budget: ExportBudget,
    class: RouteClass,
    shadow: bool,
    charged: u64,
    aborted: Option<Exhausted>,
}

impl StreamCharge {
    pub(crate) fn new(
        budgets: Budgets,
        key: BudgetKey,
        budget: ExportBudget,
        class: RouteClass,
        shadow: bool,
    ) -> StreamCharge {
        StreamCharge {
            budgets,
            key,
            budget,
            class,
            shadow,
            charged: 0,
            aborted: None,
        }
    }

    /// Charges `rows` records of the next chunk. A chunk larger than the burst is charged in
    /// burst-sized parts (a stream may be longer than one burst, it just must not outrun the
    /// refill); the parts paid before a refusal stay spent, erring towards refusing. Once
    /// aborted, every later call aborts too.
    pub async fn charge_stream(&mut self, rows: u64) -> StreamVerdict {
        if let Some(e) = &self.aborted {
            return StreamVerdict::Abort(e.clone());
        }
        let step = Scopes::of(&self.budget, self.class).max_single().max(1);
        let mut left = rows;
        loop {
            let part = left.min(step);
            let r = self
                .budgets
                .charge(&self.key, &self.budget, self.class, part, self.shadow)
                .await;
            match r {
                Ok(a) => {
                    self.charged += part;
                    left -= part;
                    if left == 0 {
                        return StreamVerdict::Continue(a);
                    }
                }
                Err(e) => {
                    self.aborted = Some(e.clone());
                    return StreamVerdict::Abort(e);
                }
            }
        }
    }

    /// Records paid for so far.
    pub fn charged(&self) -> u64 {
        self.charged
    }

    /// True once a chunk was refused.
    pub fn is_aborted(&self) -> bool {
        self.aborted.is_some()
    }
}
