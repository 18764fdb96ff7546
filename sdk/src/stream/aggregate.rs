//! Aggregate functions and their accumulators: COUNT(*), COUNT(col), SUM, MIN, MAX, AVG.
//! Accumulators merge, for session windows that grow together, and serialise, for the
//! changelog that lets a partition's state survive a restart.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::value::Value;

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    /// `COUNT(*)`: the records.
    CountAll,
    /// `COUNT(col)`: the records whose argument is not NULL.
    Count,
    /// `SUM(col)`: integer while every value is; 0 over no values (NULLs skipped), as in ksqlDB.
    Sum,
    /// `MIN(col)`
    Min,
    /// `MAX(col)`
    Max,
    /// `AVG(col)`: a float; 0.0 over no values (NULLs skipped), as in ksqlDB.
    Avg,
}

impl Function {
    /// The function by its SQL name (any case); `COUNT` means `COUNT(col)`.
    pub fn by_name(name: &str) -> Option<Function> {
        Some(match name.to_ascii_uppercase().as_str() {
            "COUNT" => Function::Count,
            "SUM" => Function::Sum,
            "MIN" => Function::Min,
            "MAX" => Function::Max,
            "AVG" => Function::Avg,
            _ => return None,
        })
    }

    /// The name as written in SQL, lower case (the default output column name).
    pub fn name(self) -> &'static str {
        match self {
            Function::CountAll | Function::Count => "count",
            Function::Sum => "sum",
            Function::Min => "min",
            Function::Max => "max",
            Function::Avg => "avg",
        }
    }

    /// An empty accumulator.
    pub fn start(self) -> Accumulator {
        match self {
            Function::CountAll | Function::Count => Accumulator::Count(0),
            Function::Sum => Accumulator::Sum(Value::Null),
            Function::Min => Accumulator::Min(Value::Null),
            Function::Max => Accumulator::Max(Value::Null),
            Function::Avg => Accumulator::Avg { sum: Value::Null, count: 0 },
        }
    }
}

/// The running state of one aggregate in one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Accumulator {
    /// A count.
    Count(i64),
    /// A sum so far (NULL before the first value).
    Sum(Value),
    /// The least value so far.
    Min(Value),
    /// The greatest value so far.
    Max(Value),
    /// Sum and count of the values so far.
    Avg {
        /// The sum, kept as SUM keeps it: whole numbers exactly (as ksqlDB's BIGINT sum), until
        /// a float or an overflow; NULL before the first value.
        sum: Value,
        /// How many values.
        count: i64,
    },
}

impl Accumulator {
    /// Adds one record's argument (`COUNT(*)` passes NULL and counts it all the same).
    pub fn add(&mut self, function: Function, value: &Value) {
        match (self, function) {
            (Accumulator::Count(n), Function::CountAll) => *n += 1,
            (Accumulator::Count(n), _) => *n += i64::from(!value.is_null()),
            (Accumulator::Sum(sum), _) => *sum = add(sum, value),
            (Accumulator::Min(min), _) => {
                if !value.is_null() && (min.is_null() || rank(value, min) == Some(Ordering::Less)) {
                    *min = value.clone();
                }
            }
            (Accumulator::Max(max), _) => {
                if !value.is_null() && (max.is_null() || rank(value, max) == Some(Ordering::Greater)) {
                    *max = value.clone();
                }
            }
            (Accumulator::Avg { sum, count }, _) => {
                if value.as_f64().is_some() {
                    *sum = add(sum, value);
                    *count += 1;
                }
            }
        }
    }

    /// Folds another accumulator of the same function into this one (session merges).
    pub fn merge(&mut self, other: &Accumulator) {
        match (self, other) {
            (Accumulator::Count(a), Accumulator::Count(b)) => *a += b,
            (Accumulator::Sum(a), Accumulator::Sum(b)) => *a = add(a, b),
            (this @ Accumulator::Min(_), Accumulator::Min(b)) => this.add(Function::Min, b),
            (this @ Accumulator::Max(_), Accumulator::Max(b)) => this.add(Function::Max, b),
            (Accumulator::Avg { sum, count }, Accumulator::Avg { sum: s, count: c }) => {
                *sum = add(sum, s);
                *count += c;
            }
            (this, other) => unreachable!("accumulators of one slot share a function: {this:?} and {other:?}"),
        }
    }

    /// The aggregate's current value. Over no values (none, or only NULLs) SUM is 0 and AVG is
    /// 0.0, as ksqlDB's start from zero; MIN and MAX are NULL.
    pub fn value(&self) -> Value {
        match self {
            Accumulator::Count(n) => Value::Int(*n),
            Accumulator::Sum(Value::Null) => Value::Int(0),
            Accumulator::Sum(v) | Accumulator::Min(v) | Accumulator::Max(v) => v.clone(),
            Accumulator::Avg { count: 0, .. } => Value::Float(0.0),
            Accumulator::Avg { sum, count } => Value::Float(sum.as_f64().unwrap_or(0.0) / *count as f64),
        }
    }
}

/// How MIN and MAX order two values: as ksqlDB does (Java's `Double.compareTo`), NaN above every
/// number, so that the result does not depend on the order the values came in (NaN compares
/// with nothing in SQL).
fn rank(a: &Value, b: &Value) -> Option<Ordering> {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if x.is_nan() || y.is_nan() => Some(x.is_nan().cmp(&y.is_nan())),
        _ => a.compare(b),
    }
}

/// `a + b` for SUM: NULLs are skipped; integers stay integers until a float or an overflow.
fn add(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (a, Value::Null) => a.clone(),
        (Value::Null, b) if b.as_f64().is_some() => b.clone(),
        (Value::Int(x), Value::Int(y)) => match x.checked_add(*y) {
            Some(sum) => Value::Int(sum),
            None => Value::Float(*x as f64 + *y as f64),
        },
        (a, b) => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => Value::Float(x + y),
            // Not a number (text, where the catalog does not know the column's type, as the
            // CLI's open one): skipped, the sum so far stands. The planner refuses SUM over a
            // column the catalog knows to be text.
            _ => a.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold(function: Function, values: &[Value]) -> Value {
        let mut acc = function.start();
        for v in values {
            acc.add(function, v);
        }
        acc.value()
    }

    #[test]
    fn each_function_over_values_with_a_null() {
        let values = [Value::Int(3), Value::Null, Value::Int(1), Value::Int(5)];
        assert_eq!(fold(Function::CountAll, &values), Value::Int(4));
        assert_eq!(fold(Function::Count, &values), Value::Int(3));
        assert_eq!(fold(Function::Sum, &values), Value::Int(9));
        assert_eq!(fold(Function::Min, &values), Value::Int(1));
        assert_eq!(fold(Function::Max, &values), Value::Int(5));
        assert_eq!(fold(Function::Avg, &values), Value::Float(3.0));
    }

    #[test]
    fn over_no_values_sum_and_avg_are_zero_as_in_ksqldb_and_min_and_max_null() {
        assert_eq!(fold(Function::Sum, &[Value::Null]), Value::Int(0));
        assert_eq!(fold(Function::Avg, &[Value::Null]), Value::Float(0.0));
        assert_eq!(fold(Function::Count, &[Value::Null]), Value::Int(0));
        assert_eq!(fold(Function::Min, &[Value::Null]), Value::Null);
        assert_eq!(fold(Function::Max, &[]), Value::Null);
    }

    /// As ksqlDB's AVG of BIGINT: the sum is exact, the division is the only rounding.
    #[test]
    fn an_average_of_whole_numbers_sums_them_exactly() {
        let big = Value::Int(1 << 53);
        let exact = ((1i64 << 53) + 2) as f64 / 3.0;
        assert_eq!(fold(Function::Avg, &[big, Value::Int(1), Value::Int(1)]), Value::Float(exact));
        assert_eq!(fold(Function::Avg, &[Value::Int(1), Value::Float(0.5)]), Value::Float(0.75));
    }

    /// As ksqlDB's (Java's `Double.compareTo`): NaN ranks above every number, whatever the
    /// order the values come in.
    #[test]
    fn min_and_max_rank_nan_above_every_number_in_any_order() {
        let nan = Value::Float(f64::NAN);
        let is_nan = |value: &Value| matches!(value, Value::Float(x) if x.is_nan());
        for values in [[nan.clone(), Value::Int(1)], [Value::Int(1), nan.clone()]] {
            assert_eq!(fold(Function::Min, &values), Value::Int(1), "{values:?}");
            assert!(is_nan(&fold(Function::Max, &values)), "{values:?}");
        }
    }

    #[test]
    fn merging_equals_folding_everything_into_one() {
        for function in
            [Function::CountAll, Function::Count, Function::Sum, Function::Min, Function::Max, Function::Avg]
        {
            let (left, right) = ([Value::Int(4), Value::Float(2.5)], [Value::Int(-1), Value::Null]);
            let mut a = function.start();
            left.iter().for_each(|v| a.add(function, v));
            let mut b = function.start();
            right.iter().for_each(|v| b.add(function, v));
            a.merge(&b);
            let all: Vec<Value> = left.iter().chain(&right).cloned().collect();
            assert_eq!(a.value(), fold(function, &all), "{function:?}");
        }
    }
}
