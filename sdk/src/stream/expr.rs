//! Scalar expressions of a plan: WHERE over an input row, SELECT and HAVING over a group's
//! window, with SQL's three-valued logic (a comparison with NULL is NULL, and NULL filters out).

use std::cmp::Ordering;

use super::scalar::{Scalar, cast, like};
use super::value::{SqlType, Value};
use super::window::Window;

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `=`
    Eq,
    /// `!=` or `<>`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
    /// `AND`
    And,
    /// `OR`
    Or,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `LIKE`: `%` in the pattern matches any run of characters, `_` any one; with `ESCAPE`,
    /// `escape` followed by a character matches that character itself.
    Like {
        /// The character of `ESCAPE 'c'`.
        escape: Option<char>,
    },
    /// `IS DISTINCT FROM`: `!=` where NULL is a value (never NULL itself: NULL is distinct from
    /// 1 and not from NULL). `IS NOT DISTINCT FROM` is its `NOT`.
    IsDistinctFrom,
}

impl BinaryOp {
    /// The operator as written in SQL.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
            BinaryOp::And => "AND",
            BinaryOp::Or => "OR",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Like { .. } => "LIKE",
            BinaryOp::IsDistinctFrom => "IS DISTINCT FROM",
        }
    }
}

/// A scalar expression. Input expressions (WHERE, GROUP BY, aggregate arguments) use
/// [`Expr::Column`] and [`Expr::RowTime`]; output expressions (SELECT, HAVING) use
/// [`Expr::Group`], [`Expr::Aggregate`] and the window bounds.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A constant.
    Literal(Value),
    /// The input column at this index of the plan's columns.
    Column(usize),
    /// The record's event time (milliseconds since the epoch).
    RowTime,
    /// The value of the GROUP BY expression at this index.
    Group(usize),
    /// The value of the aggregate at this index.
    Aggregate(usize),
    /// The start of the window (milliseconds since the epoch).
    WindowStart,
    /// The end of the window.
    WindowEnd,
    /// `NOT e`
    Not(Box<Expr>),
    /// `-e`
    Neg(Box<Expr>),
    /// `e IS NULL` (`negated`: `IS NOT NULL`)
    IsNull {
        /// The operand.
        expr: Box<Expr>,
        /// Whether it is `IS NOT NULL`.
        negated: bool,
    },
    /// `l op r`
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// A scalar function of its arguments.
    Call(Scalar, Vec<Expr>),
    /// `CASE WHEN condition THEN value ... [ELSE otherwise] END`: the value of the first
    /// branch whose condition holds, else `otherwise` (NULL without ELSE).
    Case {
        /// The `WHEN condition THEN value` branches, in order.
        branches: Vec<(Expr, Expr)>,
        /// ELSE.
        otherwise: Option<Box<Expr>>,
    },
    /// `CAST(e AS type)`: NULL where the value has no value of that type.
    Cast(Box<Expr>, SqlType),
}

/// What an expression reads from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    /// The input columns.
    pub columns: &'a [Value],
    /// The event time of the input record.
    pub row_time: i64,
    /// The group's key values.
    pub group: &'a [Value],
    /// The aggregates' current values.
    pub aggregates: &'a [Value],
    /// The window.
    pub window: Option<Window>,
}

impl Expr {
    /// Whether it reads only the input record (its columns, its time, constants): no group,
    /// aggregate or window.
    pub fn reads_input_only(&self) -> bool {
        match self {
            Expr::Literal(_) | Expr::Column(_) | Expr::RowTime => true,
            Expr::Group(_) | Expr::Aggregate(_) | Expr::WindowStart | Expr::WindowEnd => false,
            Expr::Not(e) | Expr::Neg(e) | Expr::IsNull { expr: e, .. } => e.reads_input_only(),
            Expr::Binary(_, l, r) => l.reads_input_only() && r.reads_input_only(),
            Expr::Cast(e, _) => e.reads_input_only(),
            Expr::Call(_, args) => args.iter().all(Expr::reads_input_only),
            Expr::Case { branches, otherwise } => {
                branches.iter().all(|(when, then)| when.reads_input_only() && then.reads_input_only())
                    && otherwise.as_deref().is_none_or(Expr::reads_input_only)
            }
        }
    }

    /// Whether every scalar function in it is called with as many arguments as it takes.
    pub fn arities_fit(&self) -> bool {
        match self {
            Expr::Literal(_)
            | Expr::Column(_)
            | Expr::RowTime
            | Expr::Group(_)
            | Expr::Aggregate(_)
            | Expr::WindowStart
            | Expr::WindowEnd => true,
            Expr::Not(e) | Expr::Neg(e) | Expr::IsNull { expr: e, .. } | Expr::Cast(e, _) => e.arities_fit(),
            Expr::Binary(_, l, r) => l.arities_fit() && r.arities_fit(),
            Expr::Call(function, args) => {
                let (least, most) = function.arity();
                (least..=most).contains(&args.len()) && args.iter().all(Expr::arities_fit)
            }
            Expr::Case { branches, otherwise } => {
                branches.iter().all(|(when, then)| when.arities_fit() && then.arities_fit())
                    && otherwise.as_deref().is_none_or(Expr::arities_fit)
            }
        }
    }

    /// Writes an input expression as SQL, fully bracketed, its columns named from `columns`
    /// (the plan's): two expressions that compute the same write the same text.
    pub fn write_sql(&self, columns: &[super::plan::Column], out: &mut String) {
        use std::fmt::Write;
        let _ = match self {
            Expr::Literal(value) => write!(out, "{value}"),
            Expr::Column(i) => write!(out, "`{}`", columns.get(*i).map_or("?", |c| c.name.as_str())),
            Expr::RowTime => write!(out, "ROWTIME"),
            Expr::Group(i) => write!(out, "GROUP[{i}]"),
            Expr::Aggregate(i) => write!(out, "AGGREGATE[{i}]"),
            Expr::WindowStart => write!(out, "WINDOWSTART"),
            Expr::WindowEnd => write!(out, "WINDOWEND"),
            Expr::Not(e) | Expr::Neg(e) => {
                out.push_str(if matches!(self, Expr::Not(_)) { "(NOT " } else { "(-" });
                e.write_sql(columns, out);
                write!(out, ")")
            }
            Expr::IsNull { expr, negated } => {
                out.push('(');
                expr.write_sql(columns, out);
                write!(out, " IS {}NULL)", if *negated { "NOT " } else { "" })
            }
            Expr::Binary(op, l, r) => {
                out.push('(');
                l.write_sql(columns, out);
                let _ = write!(out, " {} ", op.symbol());
                r.write_sql(columns, out);
                match op {
                    BinaryOp::Like { escape: Some(escape) } => {
                        write!(out, " ESCAPE {})", Value::from(escape.to_string()))
                    }
                    _ => write!(out, ")"),
                }
            }
            Expr::Call(function, args) => {
                let _ = write!(out, "{}(", function.name());
                for (i, arg) in args.iter().enumerate() {
                    out.push_str(if i > 0 { ", " } else { "" });
                    arg.write_sql(columns, out);
                }
                write!(out, ")")
            }
            Expr::Case { branches, otherwise } => {
                out.push_str("(CASE");
                for (when, then) in branches {
                    out.push_str(" WHEN ");
                    when.write_sql(columns, out);
                    out.push_str(" THEN ");
                    then.write_sql(columns, out);
                }
                if let Some(otherwise) = otherwise {
                    out.push_str(" ELSE ");
                    otherwise.write_sql(columns, out);
                }
                write!(out, " END)")
            }
            Expr::Cast(e, to) => {
                out.push_str("CAST(");
                e.write_sql(columns, out);
                write!(out, " AS {})", to.name())
            }
        };
    }

    /// `l op r`.
    pub fn binary(op: BinaryOp, l: Expr, r: Expr) -> Expr {
        Expr::Binary(op, Box::new(l), Box::new(r))
    }

    /// Evaluates against a scope. Indexes come from the planner, so they are in range.
    pub fn eval(&self, scope: &Scope<'_>) -> Value {
        match self {
            Expr::Literal(value) => value.clone(),
            Expr::Column(i) => scope.columns.get(*i).cloned().unwrap_or_default(),
            Expr::RowTime => Value::Int(scope.row_time),
            Expr::Group(i) => scope.group.get(*i).cloned().unwrap_or_default(),
            Expr::Aggregate(i) => scope.aggregates.get(*i).cloned().unwrap_or_default(),
            Expr::WindowStart => scope.window.map_or(Value::Null, |w| Value::Int(w.start)),
            Expr::WindowEnd => scope.window.map_or(Value::Null, |w| Value::Int(w.end)),
            Expr::Not(e) => match e.eval(scope) {
                Value::Bool(b) => Value::Bool(!b),
                _ => Value::Null,
            },
            Expr::Neg(e) => match e.eval(scope) {
                // -i64::MIN overflows: NULL, as `0 - x` is, not i64::MIN again.
                Value::Int(i) => i.checked_neg().map_or(Value::Null, Value::Int),
                Value::Float(f) => Value::Float(-f),
                _ => Value::Null,
            },
            Expr::IsNull { expr, negated } => Value::Bool(expr.eval(scope).is_null() != *negated),
            Expr::Binary(op, l, r) => binary(*op, l, r, scope),
            Expr::Call(..) | Expr::Case { .. } | Expr::Cast(..) => self.eval_scalar(scope),
        }
    }

    /// Functions, CASE and CAST, out of line: `eval` stays small for the columns, comparisons
    /// and aggregates that every query reads per record.
    #[inline(never)]
    fn eval_scalar(&self, scope: &Scope<'_>) -> Value {
        match self {
            Expr::Call(function, args) => function.apply(args.iter().map(|arg| arg.eval(scope)).collect()),
            Expr::Case { branches, otherwise } => match branches.iter().find(|(when, _)| when.holds(scope)) {
                Some((_, then)) => then.eval(scope),
                None => otherwise.as_ref().map_or(Value::Null, |otherwise| otherwise.eval(scope)),
            },
            Expr::Cast(e, to) => cast(e.eval(scope), *to),
            _ => unreachable!("eval handles the others"),
        }
    }

    /// Whether the expression holds (TRUE; NULL and FALSE do not).
    pub fn holds(&self, scope: &Scope<'_>) -> bool {
        self.eval(scope).is_true()
    }
}

fn binary(op: BinaryOp, l: &Expr, r: &Expr, scope: &Scope<'_>) -> Value {
    use BinaryOp::*;
    match op {
        And => match l.eval(scope) {
            Value::Bool(false) => Value::Bool(false),
            left => match (left, r.eval(scope)) {
                (_, Value::Bool(false)) => Value::Bool(false),
                (Value::Bool(true), Value::Bool(true)) => Value::Bool(true),
                _ => Value::Null,
            },
        },
        Or => match l.eval(scope) {
            Value::Bool(true) => Value::Bool(true),
            left => match (left, r.eval(scope)) {
                (_, Value::Bool(true)) => Value::Bool(true),
                (Value::Bool(false), Value::Bool(false)) => Value::Bool(false),
                _ => Value::Null,
            },
        },
        Eq | NotEq | Lt | LtEq | Gt | GtEq => {
            let Some(ordering) = l.eval(scope).compare(&r.eval(scope)) else { return Value::Null };
            Value::Bool(match op {
                Eq => ordering == Ordering::Equal,
                NotEq => ordering != Ordering::Equal,
                Lt => ordering == Ordering::Less,
                LtEq => ordering != Ordering::Greater,
                Gt => ordering == Ordering::Greater,
                _ => ordering != Ordering::Less,
            })
        }
        Add | Sub | Mul | Div => arithmetic(op, l.eval(scope), r.eval(scope)),
        Like { escape } => like_values(l.eval(scope), r.eval(scope), escape),
        IsDistinctFrom => {
            let (l, r) = (l.eval(scope), r.eval(scope));
            Value::Bool(match (l.is_null(), r.is_null()) {
                (false, false) => l.compare(&r) != Some(Ordering::Equal),
                (left, right) => left != right,
            })
        }
    }
}

#[inline(never)]
fn like_values(text: Value, pattern: Value, escape: Option<char>) -> Value {
    match (text, pattern) {
        (Value::Text(text), Value::Text(pattern)) => Value::Bool(like(&text, &pattern, escape)),
        _ => Value::Null,
    }
}

fn arithmetic(op: BinaryOp, l: Value, r: Value) -> Value {
    match (l, r) {
        // ksqlDB's concatenation operator: `first_name + ' ' + last_name`.
        (Value::Text(mut a), Value::Text(b)) if op == BinaryOp::Add => {
            a.push_str(&b);
            Value::Text(a)
        }
        (Value::Int(a), Value::Int(b)) => match op {
            BinaryOp::Add => a.checked_add(b).map_or(Value::Null, Value::Int),
            BinaryOp::Sub => a.checked_sub(b).map_or(Value::Null, Value::Int),
            BinaryOp::Mul => a.checked_mul(b).map_or(Value::Null, Value::Int),
            // Integer division as in ksqlDB; by zero is NULL.
            _ => a.checked_div(b).map_or(Value::Null, Value::Int),
        },
        (a, b) => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => Value::Float(match op {
                BinaryOp::Add => a + b,
                BinaryOp::Sub => a - b,
                BinaryOp::Mul => a * b,
                _ => a / b,
            }),
            _ => Value::Null,
        },
    }
}

/// Builds expressions for the Rust DSL: `col("quantity").gt(2)`.
pub mod build {
    use super::{BinaryOp, Expr};
    use crate::stream::scalar::Scalar;
    use crate::stream::value::{SqlType, Value};

    /// A reference to a column by name, resolved when the query is built.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Operand {
        /// A named column (an event field, `ROWTIME`, or an output column in a HAVING).
        Column(String),
        /// A constant.
        Literal(Value),
        /// `l op r`.
        Binary(BinaryOp, Box<Operand>, Box<Operand>),
        /// `NOT e`.
        Not(Box<Operand>),
        /// `e IS NULL` / `IS NOT NULL`.
        IsNull(Box<Operand>, bool),
        /// A scalar function of its arguments.
        Call(Scalar, Vec<Operand>),
        /// `CASE WHEN ... THEN ... [ELSE ...] END`.
        Case(Vec<(Operand, Operand)>, Option<Box<Operand>>),
        /// `CAST(e AS type)`.
        Cast(Box<Operand>, SqlType),
    }

    /// A column by name.
    pub fn col(name: &str) -> Operand {
        Operand::Column(name.to_owned())
    }

    /// A constant.
    pub fn lit(value: impl Into<Value>) -> Operand {
        Operand::Literal(value.into())
    }

    /// A scalar function: `call(Scalar::Ucase, [col("customer_id")])`. A number of arguments
    /// the function does not take is refused when the query is built ([`Plan::check`]); unlike
    /// SQL's planner, the DSL does not check their types: one the function does not take makes
    /// NULL.
    ///
    /// [`Plan::check`]: crate::stream::Plan::check
    pub fn call(function: Scalar, args: impl IntoIterator<Item = Operand>) -> Operand {
        Operand::Call(function, args.into_iter().collect())
    }

    /// `CASE WHEN condition THEN value ... [ELSE otherwise] END`.
    pub fn case(branches: impl IntoIterator<Item = (Operand, Operand)>, otherwise: Option<Operand>) -> Operand {
        // `ELSE NULL` is no ELSE, as SQL plans it.
        let otherwise = otherwise.filter(|e| *e != Operand::Literal(Value::Null));
        Operand::Case(branches.into_iter().collect(), otherwise.map(Box::new))
    }

    impl Operand {
        fn op(self, op: BinaryOp, other: impl Into<Operand>) -> Operand {
            Operand::Binary(op, Box::new(self), Box::new(other.into()))
        }
        /// `self = other`
        pub fn eq(self, other: impl Into<Operand>) -> Operand {
            self.op(BinaryOp::Eq, other)
        }
        /// `self != other`
        pub fn not_eq(self, other: impl Into<Operand>) -> Operand {
            self.op(BinaryOp::NotEq, other)
        }
        /// `self < other`
        pub fn lt(self, other: impl Into<Operand>) -> Operand {
            self.op(BinaryOp::Lt, other)
        }
        /// `self <= other`
        pub fn lt_eq(self, other: impl Into<Operand>) -> Operand {
            self.op(BinaryOp::LtEq, other)
        }
        /// `self > other`
        pub fn gt(self, other: impl Into<Operand>) -> Operand {
            self.op(BinaryOp::Gt, other)
        }
        /// `self >= other`
        pub fn gt_eq(self, other: impl Into<Operand>) -> Operand {
            self.op(BinaryOp::GtEq, other)
        }
        /// `self AND other`
        pub fn and(self, other: impl Into<Operand>) -> Operand {
            self.op(BinaryOp::And, other)
        }
        /// `self OR other`
        pub fn or(self, other: impl Into<Operand>) -> Operand {
            self.op(BinaryOp::Or, other)
        }
        /// `self + other`
        pub fn plus(self, other: impl Into<Operand>) -> Operand {
            self.op(BinaryOp::Add, other)
        }
        /// `self * other`
        pub fn times(self, other: impl Into<Operand>) -> Operand {
            self.op(BinaryOp::Mul, other)
        }
        /// `self IS NULL`
        pub fn is_null(self) -> Operand {
            Operand::IsNull(Box::new(self), false)
        }
        /// `self IS NOT NULL`
        pub fn is_not_null(self) -> Operand {
            Operand::IsNull(Box::new(self), true)
        }
        /// `self IS DISTINCT FROM other`: `!=` where NULL equals NULL and differs from any value.
        pub fn is_distinct_from(self, other: impl Into<Operand>) -> Operand {
            self.op(BinaryOp::IsDistinctFrom, other)
        }
        /// `self IS NOT DISTINCT FROM other`: `=` where NULL equals NULL and no value.
        pub fn is_not_distinct_from(self, other: impl Into<Operand>) -> Operand {
            !self.is_distinct_from(other)
        }
        /// `self LIKE pattern` (`%` any run of characters, `_` one).
        pub fn like(self, pattern: impl Into<Operand>) -> Operand {
            self.op(BinaryOp::Like { escape: None }, pattern)
        }
        /// `self LIKE pattern ESCAPE 'escape'`: `escape` followed by `%`, `_` or itself
        /// matches that character.
        pub fn like_escape(self, pattern: impl Into<Operand>, escape: char) -> Operand {
            self.op(BinaryOp::Like { escape: Some(escape) }, pattern)
        }
        /// `self BETWEEN low AND high`: `low <= self AND self <= high`, as SQL reads it.
        pub fn between(self, low: impl Into<Operand>, high: impl Into<Operand>) -> Operand {
            self.clone().gt_eq(low).and(self.lt_eq(high))
        }
        /// `self IN (values)`: `self = v1 OR ...`, as SQL reads it (nested as SQL's, a
        /// balanced tree); FALSE without values.
        pub fn is_in(self, values: impl IntoIterator<Item = impl Into<Operand>>) -> Operand {
            fn any_of(mut items: Vec<Operand>) -> Operand {
                match items.len() {
                    0 => Operand::Literal(Value::Bool(false)),
                    1 => items.remove(0),
                    n => {
                        let right = items.split_off(n.div_ceil(2));
                        any_of(items).or(any_of(right))
                    }
                }
            }
            any_of(values.into_iter().map(|value| self.clone().eq(value)).collect())
        }
        /// `CAST(self AS to)`.
        pub fn cast(self, to: SqlType) -> Operand {
            Operand::Cast(Box::new(self), to)
        }

        /// Resolves column names to a plan's expression; `resolve` maps a name to its
        /// expression, or `None` when no such column exists.
        pub(crate) fn resolve(&self, resolve: &mut dyn FnMut(&str) -> Option<Expr>) -> Result<Expr, String> {
            Ok(match self {
                Operand::Column(name) => resolve(name).ok_or_else(|| name.clone())?,
                Operand::Literal(value) => Expr::Literal(value.clone()),
                Operand::Binary(op, l, r) => Expr::binary(*op, l.resolve(resolve)?, r.resolve(resolve)?),
                Operand::Not(e) => Expr::Not(Box::new(e.resolve(resolve)?)),
                Operand::IsNull(e, negated) => Expr::IsNull { expr: Box::new(e.resolve(resolve)?), negated: *negated },
                Operand::Call(function, args) => {
                    Expr::Call(*function, args.iter().map(|arg| arg.resolve(resolve)).collect::<Result<_, _>>()?)
                }
                Operand::Case(branches, otherwise) => Expr::Case {
                    branches: branches
                        .iter()
                        .map(|(when, then)| Ok((when.resolve(resolve)?, then.resolve(resolve)?)))
                        .collect::<Result<_, String>>()?,
                    otherwise: otherwise.as_ref().map(|e| e.resolve(resolve)).transpose()?.map(Box::new),
                },
                Operand::Cast(e, to) => Expr::Cast(Box::new(e.resolve(resolve)?), *to),
            })
        }
    }

    impl std::ops::Not for Operand {
        type Output = Operand;
        /// `NOT self`: `!col("cancelled")`.
        fn not(self) -> Operand {
            Operand::Not(Box::new(self))
        }
    }

    macro_rules! literal_operand {
        ($($t:ty),*) => {$(
            impl From<$t> for Operand {
                fn from(value: $t) -> Self {
                    Operand::Literal(Value::from(value))
                }
            }
        )*};
    }
    literal_operand!(i64, f64, bool, &str, String);

    impl From<i32> for Operand {
        fn from(value: i32) -> Self {
            Operand::Literal(Value::Int(i64::from(value)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(v: impl Into<Value>) -> Expr {
        Expr::Literal(v.into())
    }

    #[test]
    fn comparisons_with_null_are_null_and_filter_out() {
        let scope = Scope::default();
        let e = Expr::binary(BinaryOp::Gt, Expr::Literal(Value::Null), lit(1));
        assert_eq!(e.eval(&scope), Value::Null);
        assert!(!e.holds(&scope));
        // FALSE AND NULL is FALSE; TRUE OR NULL is TRUE.
        let and = Expr::binary(BinaryOp::And, lit(false), Expr::Literal(Value::Null));
        assert_eq!(and.eval(&scope), Value::Bool(false));
        let or = Expr::binary(BinaryOp::Or, Expr::Literal(Value::Null), lit(true));
        assert_eq!(or.eval(&scope), Value::Bool(true));
    }

    #[test]
    fn is_distinct_from_treats_null_as_a_value() {
        let scope = Scope::default();
        let distinct = |l: Expr, r: Expr| Expr::binary(BinaryOp::IsDistinctFrom, l, r).eval(&scope);
        let null = || Expr::Literal(Value::Null);
        assert_eq!(distinct(null(), null()), Value::Bool(false));
        assert_eq!(distinct(null(), lit(1)), Value::Bool(true));
        assert_eq!(distinct(lit("a"), null()), Value::Bool(true));
        assert_eq!(distinct(lit(1), lit(1.0)), Value::Bool(false), "compared as `=` compares");
        assert_eq!(distinct(lit(1), lit(2)), Value::Bool(true));
    }

    #[test]
    fn like_writes_its_escape_as_sql() {
        let like = |escape| Expr::binary(BinaryOp::Like { escape }, Expr::Column(0), lit("a!%"));
        let sql = |e: Expr| {
            let mut out = String::new();
            e.write_sql(&[], &mut out);
            out
        };
        assert_eq!(sql(like(None)), "(`?` LIKE 'a!%')");
        assert_eq!(sql(like(Some('!'))), "(`?` LIKE 'a!%' ESCAPE '!')");
        assert_eq!(sql(like(Some('\''))), "(`?` LIKE 'a!%' ESCAPE '''')");
    }

    #[test]
    fn arithmetic_keeps_integers_and_divides_by_zero_to_null() {
        let scope = Scope::default();
        assert_eq!(Expr::binary(BinaryOp::Mul, lit(6), lit(7)).eval(&scope), Value::Int(42));
        assert_eq!(Expr::binary(BinaryOp::Div, lit(1), lit(0)).eval(&scope), Value::Null);
        assert_eq!(Expr::binary(BinaryOp::Add, lit(1), lit(0.5)).eval(&scope), Value::Float(1.5));
    }

    #[test]
    fn negating_the_least_bigint_overflows_to_null_as_subtracting_it_does() {
        let scope = Scope::default();
        let least = || lit(i64::MIN);
        assert_eq!(Expr::binary(BinaryOp::Sub, lit(0), least()).eval(&scope), Value::Null);
        assert_eq!(Expr::Neg(Box::new(least())).eval(&scope), Value::Null, "not i64::MIN again, of the wrong sign");
        assert_eq!(Expr::Neg(Box::new(lit(i64::MAX))).eval(&scope), Value::Int(-i64::MAX));
    }
}
