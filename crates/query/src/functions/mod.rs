//! chronosdb's SQL functions, registered on every session beside DataFusion's own.
//!
//! - [`time_bucket`]: TimescaleDB's `time_bucket` (DataFusion already has `date_bin` and
//!   `date_trunc`).
//! - `time_bucket_gapfill`, `locf`, `interpolate`: see [`crate::gapfill`].
//! - [`first_last`]: `first(value, time)` / `last(value, time)`.
//! - [`series`]: window functions over a time-ordered series (`derivative`, `rate`, ...).
//!
//! - [`postgres`]: `version()` in PostgreSQL's layout, which drivers parse.
//! - [`approx_distinct`]: DataFusion's HyperLogLog count, extended to tag and float
//!   columns and also called `approx_count_distinct`.
//! - [`modulo`]: PostgreSQL's `mod(a, b)`.
//! - [`sum`]: DataFusion's `sum` with PostgreSQL's result types (`bigint` sums into
//!   `numeric`), so that it never wraps.

pub mod approx_distinct;
pub mod first_last;
pub mod modulo;
pub mod postgres;
pub mod series;
pub mod sum;
pub mod time_bucket;

use datafusion::logical_expr::{AggregateUDF, ScalarUDF, WindowUDF};

use crate::gapfill::{Fill, FillMarker, TimeBucketGapfill};
use datafusion::execution::FunctionRegistry;
use datafusion::prelude::SessionContext;

/// Registers every chronosdb function on `ctx`.
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(postgres::version_udf());
    ctx.register_udf(postgres::to_regtype_udf());
    ctx.register_udf(postgres::current_setting_udf());
    ctx.register_udf(postgres::pg_is_in_recovery_udf());
    ctx.register_udf(postgres::pg_collation_is_visible_udf());
    ctx.register_udf(ScalarUDF::new_from_impl(
        postgres::JsonBuildObject::default(),
    ));
    ctx.register_udf(postgres::pg_get_serial_sequence_udf());
    ctx.register_udf(postgres::pg_get_indexdef_udf());
    ctx.register_udf(ScalarUDF::new_from_impl(time_bucket::TimeBucket::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(TimeBucketGapfill::new()));
    for fill in [Fill::Locf, Fill::Interpolate] {
        ctx.register_udf(ScalarUDF::new_from_impl(FillMarker::new(fill)));
    }
    for end in [first_last::End::First, first_last::End::Last] {
        ctx.register_udaf(AggregateUDF::new_from_impl(first_last::Selector::new(end)));
    }
    for kind in series::SeriesKind::ALL {
        ctx.register_udwf(WindowUDF::new_from_impl(series::SeriesFunction::new(kind)));
    }
    ctx.register_udaf(AggregateUDF::new_from_impl(
        approx_distinct::ApproxDistinct::new(),
    ));
    ctx.register_udaf(AggregateUDF::new_from_impl(sum::PostgresSum::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(modulo::Modulo::new()));
    // PostgreSQL's names for functions DataFusion has under other names.
    if let Ok(signum) = ctx.udf("signum") {
        ctx.register_udf(signum.as_ref().clone().with_aliases(["sign"]));
    }
    if let Ok(var_samp) = ctx.udaf("var_samp") {
        ctx.register_udaf(var_samp.as_ref().clone().with_aliases(["variance"]));
    }
}
