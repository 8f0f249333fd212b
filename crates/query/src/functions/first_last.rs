//! `first(value, time)` and `last(value, time)`: TimescaleDB's selector aggregates.
//!
//! They are spelled the TimescaleDB way but rewritten, during expression simplification,
//! into DataFusion's `first_value(value ORDER BY time)` / `last_value(...)`, whose grouped
//! accumulators are vectorised. Keeping one implementation means one set of semantics: the
//! value of the row with the smallest (largest) time, NULL values included.

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, not_impl_err, plan_err};
use datafusion::functions_aggregate::first_last::{first_value_udaf, last_value_udaf};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::function::StateFieldsArgs;
use datafusion::logical_expr::function::{AccumulatorArgs, AggregateFunctionSimplification};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Expr, Signature, SortExpr, Volatility,
};

/// Which end of the time order a selector takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum End {
    First,
    Last,
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Selector {
    end: End,
    signature: Signature,
}

impl Selector {
    pub fn new(end: End) -> Self {
        Self {
            end,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for Selector {
    fn name(&self) -> &str {
        match self.end {
            End::First => "first",
            End::Last => "last",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        if !matches!(
            args[1],
            DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
        ) && !args[1].is_numeric()
        {
            return plan_err!(
                "{}(value, time): the second argument orders the rows and must be a time or a number, not {}",
                self.name(),
                args[1]
            );
        }
        Ok(args[0].clone())
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        not_impl_err!(
            "{}(value, time) is only supported as a grouped or whole-table aggregate",
            self.name()
        )
    }

    fn state_fields(&self, _args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        not_impl_err!(
            "{}(value, time) is only supported as a grouped or whole-table aggregate",
            self.name()
        )
    }

    fn simplify(&self) -> Option<AggregateFunctionSimplification> {
        let end = self.end;
        Some(Box::new(move |function: AggregateFunction, _| {
            let params = function.params;
            let mut args = params.args.into_iter();
            let (Some(value), Some(time)) = (args.next(), args.next()) else {
                return plan_err!("first/last take two arguments: (value, time)");
            };
            let udaf = match end {
                End::First => first_value_udaf(),
                End::Last => last_value_udaf(),
            };
            Ok(Expr::AggregateFunction(AggregateFunction::new_udf(
                udaf,
                vec![value],
                params.distinct,
                params.filter,
                vec![SortExpr::new(time, true, false)],
                params.null_treatment,
            )))
        }))
    }
}
