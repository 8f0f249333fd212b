//! Integer `+`, `-` and `*` that fail on overflow, as PostgreSQL's do.
//!
//! DataFusion's arithmetic on integers wraps (`9223372036854775807 + 1` gives
//! `-9223372036854775808`): a silent wrong answer. PostgreSQL refuses with SQLSTATE 22003,
//! "bigint out of range". [`CheckedIntegerArithmetic`] is an analyzer rule, run after type
//! coercion, that replaces each integer `+`, `-` and `*` with a function computing it with
//! arrow's checked kernels; an output keeps the name it had. A constant that overflows is
//! left for execution by the simplifier, so the statement fails when it runs, with the
//! error below. Floats, decimals, times and intervals are untouched.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Datum};
use datafusion::arrow::compute::kernels::numeric::{add, mul, sub};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::error::ArrowError;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result, ScalarValue, exec_err};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

use crate::expr_rewrite::rewrite_node_expressions;

/// Rewrites integer `+`, `-`, `*` into their checked forms (see the module comment).
#[derive(Debug, Default)]
pub struct CheckedIntegerArithmetic;

impl AnalyzerRule for CheckedIntegerArithmetic {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(rewrite_node)
            .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "chronosdb_checked_integer_arithmetic"
    }
}

fn rewrite_node(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    rewrite_node_expressions(
        plan,
        |e| matches!(e, Expr::BinaryExpr(b) if checked_op(b.op).is_some()),
        rewrite_expr,
    )
}

fn rewrite_expr(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else {
        return Ok(Transformed::no(expr));
    };
    let Some(checked) = checked_op(op) else {
        return Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr {
            left,
            op,
            right,
        })));
    };
    let left_type = result_type(&left, schema)?;
    let right_type = result_type(&right, schema)?;
    if !(is_integer(&left_type) && left_type == right_type) {
        return Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr {
            left,
            op,
            right,
        })));
    }
    let udf = ScalarUDF::new_from_impl(CheckedArithmetic::new(checked));
    Ok(Transformed::yes(Expr::ScalarFunction(
        ScalarFunction::new_udf(Arc::new(udf), vec![*left, *right]),
    )))
}

/// The type of `expr`, seeing through checked arithmetic already rewritten (its type is its
/// first argument's) without `get_type`, which names every nested function call: on a
/// 1,000-term chain that naming made planning cubic.
fn result_type(expr: &Expr, schema: &DFSchema) -> Result<DataType> {
    let mut expr = expr;
    while let Expr::ScalarFunction(ScalarFunction { func, args }) = expr
        && matches!(
            func.name(),
            "checked_add" | "checked_subtract" | "checked_multiply"
        )
        && let Some(first) = args.first()
    {
        expr = first;
    }
    expr.get_type(schema)
}

fn is_integer(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    )
}

/// The arithmetic that can overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum CheckedOp {
    Add,
    Subtract,
    Multiply,
}

fn checked_op(op: Operator) -> Option<CheckedOp> {
    match op {
        Operator::Plus => Some(CheckedOp::Add),
        Operator::Minus => Some(CheckedOp::Subtract),
        Operator::Multiply => Some(CheckedOp::Multiply),
        _ => None,
    }
}

/// `checked_add(a, b)` and friends: integer arithmetic that fails on overflow.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckedArithmetic {
    op: CheckedOp,
    signature: Signature,
}

impl CheckedArithmetic {
    fn new(op: CheckedOp) -> Self {
        Self {
            op,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for CheckedArithmetic {
    fn name(&self) -> &str {
        match self.op {
            CheckedOp::Add => "checked_add",
            CheckedOp::Subtract => "checked_subtract",
            CheckedOp::Multiply => "checked_multiply",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args.first().cloned().unwrap_or(DataType::Int64))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [left, right] = args.args.as_slice() else {
            return exec_err!("{} takes two arguments", self.name());
        };
        let data_type = left.data_type();
        let scalars = matches!(
            (left, right),
            (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_))
        );
        let left = datum(left)?;
        let right = datum(right)?;
        let result = match self.op {
            CheckedOp::Add => add(left.as_ref(), right.as_ref()),
            CheckedOp::Subtract => sub(left.as_ref(), right.as_ref()),
            CheckedOp::Multiply => mul(left.as_ref(), right.as_ref()),
        };
        let array = match result {
            Ok(array) => array,
            Err(ArrowError::ArithmeticOverflow(_)) => {
                return exec_err!("{} out of range", postgres_type_name(&data_type));
            }
            Err(e) => return Err(e.into()),
        };
        if scalars {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &array, 0,
            )?))
        } else {
            Ok(ColumnarValue::Array(array))
        }
    }
}

/// An argument as arrow's kernels take it: an array, or a scalar broadcast to any length.
fn datum(value: &ColumnarValue) -> Result<Box<dyn Datum>> {
    Ok(match value {
        ColumnarValue::Array(array) => Box::new(ArrayRef::clone(array)),
        ColumnarValue::Scalar(scalar) => Box::new(scalar.to_scalar()?),
    })
}

/// PostgreSQL's name for an integer type, as its out-of-range errors say it.
fn postgres_type_name(data_type: &DataType) -> &'static str {
    match data_type {
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint",
        DataType::Int32 | DataType::UInt16 => "integer",
        DataType::UInt64 => "numeric",
        _ => "bigint",
    }
}
