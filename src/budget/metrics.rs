//! Budget counters, per (app, purpose, class). Kept in their own value so the process
//! registry (crate::metrics) registers them once with [`BudgetMetrics::register`]; the
//! families are `Arc`s inside, so the budgets and the registry share the same counters.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::BudgetKey;
use crate::policy::RouteClass;

/// Labels of the budget counters: names from config, never request content. Shared, not
/// copied: a charge looks its counter up with them on every governed read.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BudgetLabels {
    pub app: std::sync::Arc<str>,
    pub purpose: std::sync::Arc<str>,
    pub class: &'static str,
}

/// Records charged and refused per key, refusals, shadow overruns, store fallbacks.
#[derive(Clone, Debug, Default)]
pub struct BudgetMetrics {
    /// Records delivered and paid for.
    pub records_charged: Family<BudgetLabels, Counter>,
    /// Records of responses refused at charge time (never delivered; in shadow: delivered).
    pub records_refused: Family<BudgetLabels, Counter>,
    /// Requests refused (pre-check or charge), enforce mode.
    pub refusals: Family<BudgetLabels, Counter>,
    /// Refusals a `shadow` purpose would have had.
    pub shadow_refusals: Family<BudgetLabels, Counter>,
    /// Decisions made without the shared store (fallback share or bulk fail-closed).
    pub store_fallbacks: Family<BudgetLabels, Counter>,
    /// Keys held in memory after the last sweep.
    pub live_keys: Gauge,
}

fn labels(key: &BudgetKey, class: RouteClass) -> BudgetLabels {
    BudgetLabels {
        app: key.app.clone(),
        purpose: key.purpose.clone(),
        class: class.as_str(),
    }
}

impl BudgetMetrics {
    /// Registers every budget metric under `registry` (names get its prefix, e.g. `zweck_`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "budget_records_charged",
            "Records delivered and charged to export budgets",
            self.records_charged.clone(),
        );
        registry.register(
            "budget_records_refused",
            "Records of responses refused by export budgets at charge time",
            self.records_refused.clone(),
        );
        registry.register(
            "budget_refusals",
            "Requests refused by export budgets",
            self.refusals.clone(),
        );
        registry.register(
            "budget_shadow_refusals",
            "Refusals shadow-mode purposes would have had",
            self.shadow_refusals.clone(),
        );
        registry.register(
            "budget_store_fallbacks",
            "Budget decisions made while the shared store was unreachable",
            self.store_fallbacks.clone(),
        );
        registry.register(
            "budget_live_keys",
            "Budget keys held in memory after the last sweep",
            self.live_keys.clone(),
        );
    }

    pub(crate) fn charged(&self, key: &BudgetKey, class: RouteClass, n: u64) {
        self.records_charged
            .get_or_create(&labels(key, class))
            .inc_by(n);
    }

    pub(crate) fn refused(&self, key: &BudgetKey, class: RouteClass, n: u64, _shadow: bool) {
        self.records_refused
            .get_or_create(&labels(key, class))
            .inc_by(n);
    }

    pub(crate) fn refusal(&self, key: &BudgetKey, class: RouteClass) {
        self.refusals.get_or_create(&labels(key, class)).inc();
    }

    pub(crate) fn shadow_refusal(&self, key: &BudgetKey, class: RouteClass) {
        self.shadow_refusals
            .get_or_create(&labels(key, class))
            .inc();
    }

    pub(crate) fn fallback(&self, key: &BudgetKey, class: RouteClass) {
        self.store_fallbacks
            .get_or_create(&labels(key, class))
            .inc();
    }

    pub(crate) fn set_live_keys(&self, n: usize) {
        self.live_keys.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_metrics_render_with_labels() {
        let m = BudgetMetrics::default();
        let mut reg = Registry::with_prefix("zweck");
        m.register(&mut reg);
        m.charged(&BudgetKey::new("bi", "analytics"), RouteClass::List, 2000);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).expect("encode");
        assert!(out.contains(
            "zweck_budget_records_charged_total{app=\"bi\",purpose=\"analytics\",class=\"list\"} 2000"
        ));
    }
}
