//! `approx_distinct` / `approx_count_distinct` that also accept tag and float columns.
//!
//! DataFusion's HyperLogLog aggregate refuses dictionary-encoded input, and every chronosdb
//! tag is a dictionary; it refuses floats too. This wrapper declares a coercion from a
//! dictionary to its value type, counts floats by their bit pattern (with `-0.0` counted as
//! `0.0` and every NaN as one value, since they compare equal) and hands everything else
//! to DataFusion's implementation.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::functions_aggregate::approx_distinct::approx_distinct_udaf;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ApproxDistinct {
    inner: Arc<AggregateUDF>,
    signature: Signature,
    aliases: Vec<String>,
}

impl ApproxDistinct {
    pub fn new() -> Self {
        Self {
            inner: approx_distinct_udaf(),
            signature: Signature::user_defined(Volatility::Immutable),
            aliases: vec!["approx_count_distinct".to_string()],
        }
    }
}

impl Default for ApproxDistinct {
    fn default() -> Self {
        Self::new()
    }
}

impl AggregateUDFImpl for ApproxDistinct {
    fn name(&self) -> &str {
        "approx_distinct"
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        match args {
            [DataType::Dictionary(_, value)] => Ok(vec![value.as_ref().clone()]),
            [DataType::Float16 | DataType::Float32 | DataType::Float64] => {
                Ok(vec![DataType::Float64])
            }
            [other] => Ok(vec![other.clone()]),
            _ => plan_err!("approx_distinct takes one argument"),
        }
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        self.inner.return_type(args)
    }

    fn default_value(&self, data_type: &DataType) -> Result<ScalarValue> {
        self.inner.default_value(data_type)
    }

    fn is_nullable(&self) -> bool {
        self.inner.is_nullable()
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let [field] = args.expr_fields else {
            return self.inner.accumulator(args);
        };
        if field.data_type() != &DataType::Float64 {
            return self.inner.accumulator(args);
        }
        // The inner aggregate counts the floats' canonical bit patterns as unsigned integers.
        let bits: FieldRef = Arc::new(Field::new(field.name(), DataType::UInt64, true));
        let inner = self.inner.accumulator(AccumulatorArgs {
            expr_fields: std::slice::from_ref(&bits),
            ..args
        })?;
        Ok(Box::new(FloatBits { inner }))
    }
}

/// Feeds an accumulator over `UInt64` with the canonical bit patterns of `Float64` input.
#[derive(Debug)]
struct FloatBits {
    inner: Box<dyn Accumulator>,
}

/// The bits of `value`, equal for values that compare equal (`0.0` and `-0.0`, all NaNs).
fn canonical_bits(value: f64) -> u64 {
    if value == 0.0 {
        0
    } else if value.is_nan() {
        f64::NAN.to_bits()
    } else {
        value.to_bits()
    }
}

impl Accumulator for FloatBits {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let Some(floats) = values.first() else {
            return Ok(());
        };
        let floats = floats.as_primitive::<Float64Type>();
        let bits: UInt64Array = floats.unary(canonical_bits);
        self.inner.update_batch(&[Arc::new(bits) as ArrayRef])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.inner.merge_batch(states)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.inner.state()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.inner.evaluate()
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.inner.size()
    }
}

#[cfg(test)]
mod tests {
    use super::canonical_bits;

    #[test]
    fn equal_floats_have_equal_bits() {
        assert_eq!(canonical_bits(0.0), canonical_bits(-0.0));
        assert_eq!(canonical_bits(f64::NAN), canonical_bits(-f64::NAN));
        assert_ne!(canonical_bits(1.0), canonical_bits(-1.0));
    }
}
