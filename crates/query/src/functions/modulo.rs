//! `mod(a, b)`: PostgreSQL's name for the remainder DataFusion has only as the `%`
//! operator, with the same argument types, result type and errors (`mod(5, 0)` is
//! "division by zero").

use datafusion::arrow::compute::kernels::numeric::rem;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::type_coercion::binary::BinaryTypeCoercer;
use datafusion::logical_expr::{
    ColumnarValue, Operator, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::checked_arithmetic::{datum, shaped_like};

/// `mod(a, b)`, the remainder of `a / b` with the sign of `a`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Modulo {
    signature: Signature,
}

impl Modulo {
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Default for Modulo {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for Modulo {
    fn name(&self) -> &str {
        "mod"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let [left, right] = args else {
            return exec_err!("mod takes two arguments, not {}", args.len());
        };
        let (left, right) =
            BinaryTypeCoercer::new(left, &Operator::Modulo, right).get_input_types()?;
        Ok(vec![left, right])
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let [left, right] = args else {
            return exec_err!("mod takes two arguments, not {}", args.len());
        };
        BinaryTypeCoercer::new(left, &Operator::Modulo, right).get_result_type()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [left, right] = args.args.as_slice() else {
            return exec_err!("mod takes two arguments");
        };
        let result = rem(datum(left)?.as_ref(), datum(right)?.as_ref())?;
        shaped_like(&args.args, result)
    }
}
