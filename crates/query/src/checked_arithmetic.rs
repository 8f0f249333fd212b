//! Arithmetic that fails or rounds as PostgreSQL's does: integer `+`, `-` and `*` that
//! fail on overflow, float division that fails on a zero divisor, and float-to-integer
//! casts and `round(float)` that round half to even.
//!
//! DataFusion's arithmetic on integers wraps (`9223372036854775807 + 1` gives
//! `-9223372036854775808`): a silent wrong answer. PostgreSQL refuses with SQLSTATE 22003,
//! "bigint out of range". [`CheckedIntegerArithmetic`] is an analyzer rule, run after type
//! coercion, that replaces each integer `+`, `-` and `*` with a function computing it with
//! arrow's checked kernels; an output keeps the name it had. A constant that overflows is
//! left for execution by the simplifier, so the statement fails when it runs, with the
//! error below.
//!
//! PostgreSQL also refuses `float8 / 0` ("division by zero", 22012) where IEEE arithmetic
//! gives `Infinity`, and rounds a float to an integer (in a cast and in `round(float8)`)
//! with `rint`, half to even (`2.5` → 2, `3.5` → 4); DataFusion truncates in casts and
//! rounds half away from zero. Decimals, times and intervals are untouched.
//!
//! Float functions refuse what PostgreSQL's refuse where IEEE arithmetic answers: `ln`,
//! `log` and `log10` of zero or a negative number (2201E, "cannot take logarithm of
//! zero"), and a cast of a float8 to real that overflows to infinity or underflows to
//! zero (22003, "value out of range: overflow").

use std::sync::Arc;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::array::{ArrayRef, Datum};
use datafusion::arrow::compute::kernels::numeric::{add, div, mul, sub};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::datatypes::{Float32Type, Float64Type};
use datafusion::arrow::error::ArrowError;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result, ScalarValue, exec_err};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    BinaryExpr, Cast, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
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
        |e| match e {
            Expr::BinaryExpr(b) => checked_op(b.op).is_some(),
            Expr::Cast(cast) => {
                is_integer(cast.field.data_type()) || cast.field.data_type() == &DataType::Float32
            }
            Expr::ScalarFunction(f) => {
                (f.name() == "round" && f.args.len() == 1) || is_logarithm(f)
            }
            _ => false,
        },
        rewrite_expr,
    )
}

fn rewrite_expr(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let expr = match expr {
        Expr::Cast(cast) => return round_before_integer_cast(cast, schema),
        Expr::ScalarFunction(f) if f.name() == "round" && f.args.len() == 1 => {
            let float = is_float(&f.args[0].get_type(schema)?);
            return Ok(match float {
                true => Transformed::yes(round_half_even(f.args.into_iter().next())),
                false => Transformed::no(Expr::ScalarFunction(f)),
            });
        }
        Expr::ScalarFunction(mut f) if is_logarithm(&f) => {
            if !is_float(&f.args[0].get_type(schema)?) {
                return Ok(Transformed::no(Expr::ScalarFunction(f)));
            }
            let checked = float_check(FloatCheck::LogarithmArgument, f.args.remove(0));
            f.args.insert(0, checked);
            return Ok(Transformed::yes(Expr::ScalarFunction(f)));
        }
        expr => expr,
    };
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
    let applies = match checked {
        CheckedOp::Divide => is_float(&left_type),
        _ => is_integer(&left_type),
    };
    if !(applies && left_type == right_type) {
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
            "checked_add" | "checked_subtract" | "checked_multiply" | "checked_divide"
        )
        && let Some(first) = args.first()
    {
        expr = first;
    }
    expr.get_type(schema)
}

/// `ln(x)`, `log(x)` or `log10(x)`: a logarithm PostgreSQL refuses for `x <= 0`.
fn is_logarithm(f: &ScalarFunction) -> bool {
    f.args.len() == 1 && matches!(f.name(), "ln" | "log" | "log10")
}

/// `CAST(x AS int)` of a float `x` as `CAST(rint(x) AS int)`, and `CAST(x AS real)` of a
/// float8 `x` as a cast that fails where the value does not fit.
fn round_before_integer_cast(cast: Cast, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let source = cast.expr.get_type(schema)?;
    if source == DataType::Float64 && cast.field.data_type() == &DataType::Float32 {
        return Ok(Transformed::yes(float_check(
            FloatCheck::FitsReal,
            *cast.expr,
        )));
    }
    if !is_integer(cast.field.data_type()) || !is_float(&source) {
        return Ok(Transformed::no(Expr::Cast(cast)));
    }
    let Cast { expr, field } = cast;
    Ok(Transformed::yes(Expr::Cast(Cast {
        expr: Box::new(round_half_even(Some(*expr))),
        field,
    })))
}

/// `rint(x)`: `x` rounded to the nearest integer, half to even.
fn round_half_even(arg: Option<Expr>) -> Expr {
    let udf = ScalarUDF::new_from_impl(RoundHalfEven::default());
    Expr::ScalarFunction(ScalarFunction::new_udf(
        Arc::new(udf),
        arg.into_iter().collect(),
    ))
}

fn is_float(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Float32 | DataType::Float64)
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
    /// Float division, refused when a divisor is zero.
    Divide,
}

fn checked_op(op: Operator) -> Option<CheckedOp> {
    match op {
        Operator::Plus => Some(CheckedOp::Add),
        Operator::Minus => Some(CheckedOp::Subtract),
        Operator::Multiply => Some(CheckedOp::Multiply),
        Operator::Divide => Some(CheckedOp::Divide),
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
            CheckedOp::Divide => "checked_divide",
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
        if self.op == CheckedOp::Divide && has_zero(right) {
            return exec_err!("division by zero");
        }
        let (l, r) = (datum(left)?, datum(right)?);
        let result = match self.op {
            CheckedOp::Add => add(l.as_ref(), r.as_ref()),
            CheckedOp::Subtract => sub(l.as_ref(), r.as_ref()),
            CheckedOp::Multiply => mul(l.as_ref(), r.as_ref()),
            CheckedOp::Divide => div(l.as_ref(), r.as_ref()),
        };
        let array = match result {
            Ok(array) => array,
            Err(ArrowError::ArithmeticOverflow(_)) => {
                return exec_err!("{} out of range", postgres_type_name(&data_type));
            }
            Err(e) => return Err(e.into()),
        };
        shaped_like(&args.args, array)
    }
}

/// Whether a float divisor holds a zero (a null is no zero: `x / NULL` is NULL).
fn has_zero(divisor: &ColumnarValue) -> bool {
    match divisor {
        ColumnarValue::Scalar(ScalarValue::Float64(Some(v))) => *v == 0.0,
        ColumnarValue::Scalar(ScalarValue::Float32(Some(v))) => *v == 0.0,
        ColumnarValue::Scalar(_) => false,
        ColumnarValue::Array(array) => match array.data_type() {
            DataType::Float64 => array
                .as_primitive::<Float64Type>()
                .iter()
                .any(|v| v == Some(0.0)),
            DataType::Float32 => array
                .as_primitive::<Float32Type>()
                .iter()
                .any(|v| v == Some(0.0)),
            _ => false,
        },
    }
}

/// `rint(x)`: a float rounded to the nearest integer, half to even, as PostgreSQL rounds
/// floats in `round(float8)` and in casts to integers.
#[derive(Debug, PartialEq, Eq, Hash)]
struct RoundHalfEven {
    signature: Signature,
}

impl Default for RoundHalfEven {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for RoundHalfEven {
    fn name(&self) -> &str {
        "rint"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args.first().cloned().unwrap_or(DataType::Float64))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [value] = args.args.as_slice() else {
            return exec_err!("rint takes one argument");
        };
        let array = value.to_array(1)?;
        let rounded: ArrayRef = match array.data_type() {
            DataType::Float64 => Arc::new(
                array
                    .as_primitive::<Float64Type>()
                    .unary::<_, Float64Type>(f64::round_ties_even),
            ) as ArrayRef,
            DataType::Float32 => Arc::new(
                array
                    .as_primitive::<Float32Type>()
                    .unary::<_, Float32Type>(f32::round_ties_even),
            ),
            other => return exec_err!("rint of {other} is not supported"),
        };
        shaped_like(&args.args, rounded)
    }
}

/// What a [`CheckedFloat`] refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum FloatCheck {
    /// Zero or a negative number (the argument of a logarithm); passes the value on.
    LogarithmArgument,
    /// A float8 that is not infinite but becomes so as a real, or not zero but becomes
    /// so; gives the real.
    FitsReal,
}

fn float_check(check: FloatCheck, arg: Expr) -> Expr {
    let udf = ScalarUDF::new_from_impl(CheckedFloat {
        check,
        signature: Signature::any(1, Volatility::Immutable),
    });
    Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(udf), vec![arg]))
}

/// A float passed on, or refused as PostgreSQL refuses it (see [`FloatCheck`]).
#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckedFloat {
    check: FloatCheck,
    signature: Signature,
}

impl ScalarUDFImpl for CheckedFloat {
    fn name(&self) -> &str {
        match self.check {
            FloatCheck::LogarithmArgument => "checked_logarithm_argument",
            FloatCheck::FitsReal => "checked_real",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(match self.check {
            FloatCheck::LogarithmArgument => args.first().cloned().unwrap_or(DataType::Float64),
            FloatCheck::FitsReal => DataType::Float32,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [value] = args.args.as_slice() else {
            return exec_err!("{} takes one argument", self.name());
        };
        let array = value.to_array(1)?;
        let result: ArrayRef = match (self.check, array.data_type()) {
            (FloatCheck::LogarithmArgument, DataType::Float64) => {
                let values = array.as_primitive::<Float64Type>();
                logarithm_argument(values.iter().flatten())?;
                array
            }
            (FloatCheck::LogarithmArgument, DataType::Float32) => {
                let values = array.as_primitive::<Float32Type>();
                logarithm_argument(values.iter().flatten().map(f64::from))?;
                array
            }
            (FloatCheck::FitsReal, DataType::Float64) => {
                let values = array.as_primitive::<Float64Type>();
                for v in values.iter().flatten() {
                    let real = v as f32;
                    if real.is_infinite() && v.is_finite() {
                        return exec_err!("value out of range: overflow");
                    }
                    if real == 0.0 && v != 0.0 {
                        return exec_err!("value out of range: underflow");
                    }
                }
                Arc::new(values.unary::<_, Float32Type>(|v| v as f32))
            }
            (_, other) => return exec_err!("{} of {other} is not supported", self.name()),
        };
        shaped_like(&args.args, result)
    }
}

/// Refuses a logarithm's argument as PostgreSQL does (NaN passes, as there).
fn logarithm_argument(mut values: impl Iterator<Item = f64>) -> Result<()> {
    match values.find(|v| *v <= 0.0) {
        Some(0.0) => exec_err!("cannot take logarithm of zero"),
        Some(_) => exec_err!("cannot take logarithm of a negative number"),
        None => Ok(()),
    }
}

/// A kernel's result as a function returns it: a scalar when every argument was one.
pub(crate) fn shaped_like(args: &[ColumnarValue], result: ArrayRef) -> Result<ColumnarValue> {
    if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
            &result, 0,
        )?))
    } else {
        Ok(ColumnarValue::Array(result))
    }
}

/// An argument as arrow's kernels take it: an array, or a scalar broadcast to any length.
pub(crate) fn datum(value: &ColumnarValue) -> Result<Box<dyn Datum>> {
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
