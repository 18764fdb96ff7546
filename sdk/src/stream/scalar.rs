//! Scalar functions, CAST and LIKE: what an expression computes from one row's values, as
//! ksqlDB defines them. A NULL argument makes a NULL result, except where a function is about
//! NULLs (COALESCE, IFNULL) or skips them (CONCAT); so does an argument of a type the function
//! does not take, which the planner refuses wherever the catalog tells the types.

use super::value::{SqlType, Value};

/// A scalar function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scalar {
    /// `ABS(x)`: of the argument's type.
    Abs,
    /// `CEIL(x)`: the least whole number not below `x`, of the argument's type.
    Ceil,
    /// `FLOOR(x)`: the greatest whole number not above `x`, of the argument's type.
    Floor,
    /// `ROUND(x)`: the nearest BIGINT, halves rounded up (towards positive infinity) as in
    /// ksqlDB; `ROUND(x, scale)`: a DOUBLE rounded to `scale` decimal places (left of the point
    /// when negative).
    Round,
    /// `UCASE(s)`: upper case.
    Ucase,
    /// `LCASE(s)`: lower case.
    Lcase,
    /// `TRIM(s)`: without white space at either end.
    Trim,
    /// `LEN(s)`: the number of characters.
    Len,
    /// `CONCAT(s, ...)`: the strings one after the other, NULLs skipped (as ksqlDB does).
    Concat,
    /// `SUBSTRING(s, pos [, len])`: the characters from `pos` (1 is the first, -1 the last)
    /// on, `len` of them at most.
    Substring,
    /// `COALESCE(x, ...)`: the first argument that is not NULL.
    Coalesce,
    /// `IFNULL(x, y)`: `x`, or `y` when `x` is NULL.
    Ifnull,
}

/// What a function takes, for the planner's checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Takes {
    /// Numbers.
    Numbers,
    /// Strings.
    Strings,
    /// A string, then whole numbers (SUBSTRING).
    StringThenWholeNumbers,
    /// A number, then a whole number (ROUND's scale).
    NumberThenWholeNumber,
    /// Values of one type, whichever it is (COALESCE, IFNULL).
    AnyOneType,
}

impl Scalar {
    /// Every function, in the order the error for an unknown one lists them.
    pub const ALL: [Scalar; 12] = [
        Scalar::Abs,
        Scalar::Ceil,
        Scalar::Floor,
        Scalar::Round,
        Scalar::Ucase,
        Scalar::Lcase,
        Scalar::Trim,
        Scalar::Len,
        Scalar::Concat,
        Scalar::Substring,
        Scalar::Coalesce,
        Scalar::Ifnull,
    ];

    /// The function by its SQL name, in any case.
    pub fn by_name(name: &str) -> Option<Scalar> {
        Scalar::ALL.into_iter().find(|f| f.name().eq_ignore_ascii_case(name))
    }

    /// The name in SQL.
    pub fn name(self) -> &'static str {
        match self {
            Scalar::Abs => "ABS",
            Scalar::Ceil => "CEIL",
            Scalar::Floor => "FLOOR",
            Scalar::Round => "ROUND",
            Scalar::Ucase => "UCASE",
            Scalar::Lcase => "LCASE",
            Scalar::Trim => "TRIM",
            Scalar::Len => "LEN",
            Scalar::Concat => "CONCAT",
            Scalar::Substring => "SUBSTRING",
            Scalar::Coalesce => "COALESCE",
            Scalar::Ifnull => "IFNULL",
        }
    }

    /// How many arguments it takes: at least, at most.
    pub fn arity(self) -> (usize, usize) {
        match self {
            Scalar::Round => (1, 2),
            Scalar::Substring => (2, 3),
            Scalar::Concat | Scalar::Coalesce => (1, usize::MAX),
            Scalar::Ifnull => (2, 2),
            _ => (1, 1),
        }
    }

    /// What its arguments are.
    pub(crate) fn takes(self) -> Takes {
        match self {
            Scalar::Abs | Scalar::Ceil | Scalar::Floor => Takes::Numbers,
            Scalar::Round => Takes::NumberThenWholeNumber,
            Scalar::Ucase | Scalar::Lcase | Scalar::Trim | Scalar::Len | Scalar::Concat => Takes::Strings,
            Scalar::Substring => Takes::StringThenWholeNumbers,
            Scalar::Coalesce | Scalar::Ifnull => Takes::AnyOneType,
        }
    }

    /// The result's type, from the arguments' types where known.
    pub fn result_type(self, args: &[Option<SqlType>]) -> Option<SqlType> {
        match self {
            Scalar::Abs | Scalar::Ceil | Scalar::Floor => args.first().copied().flatten(),
            Scalar::Round if args.len() > 1 => Some(SqlType::Double),
            Scalar::Round => Some(SqlType::Bigint),
            Scalar::Len => Some(SqlType::Bigint),
            Scalar::Ucase | Scalar::Lcase | Scalar::Trim | Scalar::Concat | Scalar::Substring => Some(SqlType::Text),
            Scalar::Coalesce | Scalar::Ifnull => common_type(args.iter().copied()),
        }
    }

    /// The function's value for these arguments (as many as [`Scalar::arity`] allows).
    pub fn apply(self, mut args: Vec<Value>) -> Value {
        match self {
            Scalar::Coalesce | Scalar::Ifnull => return args.into_iter().find(|v| !v.is_null()).unwrap_or_default(),
            Scalar::Concat => {
                let mut out = String::new();
                for arg in &args {
                    match arg {
                        Value::Text(text) => out.push_str(text),
                        Value::Null => {}
                        _ => return Value::Null,
                    }
                }
                return Value::Text(out);
            }
            _ => {}
        }
        if args.iter().any(Value::is_null) {
            return Value::Null;
        }
        let Some(first) = args.first_mut().map(std::mem::take) else { return Value::Null };
        match (self, first) {
            (Scalar::Abs, Value::Int(i)) => i.checked_abs().map_or(Value::Null, Value::Int),
            (Scalar::Abs, Value::Float(x)) => Value::Float(x.abs()),
            (Scalar::Ceil | Scalar::Floor, Value::Int(i)) => Value::Int(i),
            (Scalar::Ceil, Value::Float(x)) => Value::Float(x.ceil()),
            (Scalar::Floor, Value::Float(x)) => Value::Float(x.floor()),
            (Scalar::Round, value) => round(value, args.get(1)),
            (Scalar::Ucase, Value::Text(s)) => Value::Text(s.to_uppercase()),
            (Scalar::Lcase, Value::Text(s)) => Value::Text(s.to_lowercase()),
            (Scalar::Trim, Value::Text(s)) => Value::Text(s.trim().to_owned()),
            (Scalar::Len, Value::Text(s)) => Value::Int(s.chars().count() as i64),
            (Scalar::Substring, Value::Text(s)) => substring(&s, args.get(1), args.get(2)),
            _ => Value::Null,
        }
    }
}

/// The type of values that may be any of these (COALESCE's, CASE's): DOUBLE when BIGINT and
/// DOUBLE mix, else the first known.
pub(crate) fn common_type(types: impl Iterator<Item = Option<SqlType>>) -> Option<SqlType> {
    let known: Vec<SqlType> = types.flatten().collect();
    match known.iter().all(|t| t.is_numeric()) && known.contains(&SqlType::Double) {
        true => Some(SqlType::Double),
        false => known.first().copied(),
    }
}

/// Half up, towards positive infinity, exactly: `x - floor(x)` is exact for every double.
fn round_half_up(x: f64) -> f64 {
    let floor = x.floor();
    if x - floor >= 0.5 { floor + 1.0 } else { floor }
}

fn round(value: Value, scale: Option<&Value>) -> Value {
    match (value, scale) {
        (Value::Int(i), None) => Value::Int(i),
        (Value::Float(x), None) => {
            let rounded = round_half_up(x);
            // Beyond BIGINT (or NaN): no whole number to give.
            match rounded >= -(2f64.powi(63)) && rounded < 2f64.powi(63) {
                true => Value::Int(rounded as i64),
                false => Value::Null,
            }
        }
        (value, Some(Value::Int(scale))) => match value.as_f64() {
            Some(x) => Value::Float(round_decimal(x, (*scale).clamp(-400, 400) as i32)),
            None => Value::Null,
        },
        _ => Value::Null,
    }
}

/// `x` rounded to `scale` decimal places, halves up (towards positive infinity), on the
/// shortest decimal that reads back as `x`, as ksqlDB rounds (`1.005` is 1.01 at two places,
/// though the double is a little below 1.005).
fn round_decimal(x: f64, scale: i32) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return x;
    }
    // `d.ddd e exp`: digit i (from 0) stands for 10^(exp - i).
    let text = format!("{:e}", x.abs());
    let (mantissa, exp) = text.split_once('e').expect("`{:e}` writes an exponent");
    let exp: i32 = exp.parse().expect("a whole exponent");
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).map(|d| d - b'0').collect();
    // The digits at 10^-scale and above are kept.
    let kept = exp + 1 + scale;
    if kept >= digits.len() as i32 {
        return x;
    }
    let (units, next, rest) = match usize::try_from(kept) {
        Ok(kept) => (&digits[..kept], digits[kept], &digits[kept + 1..]),
        // Below half a unit: nothing is left.
        Err(_) => (&digits[..0], 0, &digits[..0]),
    };
    let up = match x > 0.0 {
        true => next >= 5,
        // Towards positive infinity: a negative half goes down in magnitude.
        false => next > 5 || (next == 5 && rest.iter().any(|d| *d > 0)),
    };
    let units = units.iter().fold(0u64, |n, d| n * 10 + u64::from(*d)) + u64::from(up);
    // No negative zero: what rounds to nothing is 0 (a decimal has no sign for it).
    let sign = if x < 0.0 && units > 0 { "-" } else { "" };
    format!("{sign}{units}e{}", -scale).parse().unwrap_or(x)
}

fn substring(s: &str, pos: Option<&Value>, len: Option<&Value>) -> Value {
    let Some(Value::Int(pos)) = pos else { return Value::Null };
    let count = s.chars().count() as i64;
    // 1 is the first character, -1 the last; 0 counts as 1, as in ksqlDB.
    let start = match *pos {
        p if p > 0 => p - 1,
        0 => 0,
        p => (count + p).max(0),
    };
    let take = match len {
        None => i64::MAX,
        Some(Value::Int(len)) => (*len).max(0),
        Some(_) => return Value::Null,
    };
    Value::Text(s.chars().skip(start.min(count) as usize).take(take.min(count) as usize).collect())
}

/// `CAST(value AS to)`: NULL when the value has no value of that type (a string that is not
/// a number, a DOUBLE beyond BIGINT). A DOUBLE becomes a BIGINT without its fraction and a
/// string as Java writes it; a string is TRUE when it is `true` in any case, else FALSE.
pub fn cast(value: Value, to: SqlType) -> Value {
    match (value, to) {
        (Value::Null, _) => Value::Null,
        (Value::Int(i), SqlType::Double) => Value::Float(i as f64),
        (Value::Float(x), SqlType::Bigint) => match x.trunc() >= -(2f64.powi(63)) && x.trunc() < 2f64.powi(63) {
            true => Value::Int(x.trunc() as i64),
            false => Value::Null,
        },
        (Value::Text(s), SqlType::Bigint) => s.trim().parse().map_or(Value::Null, Value::Int),
        (Value::Text(s), SqlType::Double) => parse_double(s.trim()).map_or(Value::Null, Value::Float),
        // As Java's `Boolean.parseBoolean`, which ksqlDB uses: `true` in any case, else false.
        (Value::Text(s), SqlType::Boolean) => Value::Bool(s.eq_ignore_ascii_case("true")),
        (Value::Text(s), SqlType::Text) => Value::Text(s),
        (Value::Bool(b), SqlType::Text) => Value::Text(b.to_string()),
        (Value::Int(i), SqlType::Text) => Value::Text(i.to_string()),
        (Value::Float(x), SqlType::Text) => Value::Text(java_double(x)),
        (value, to) if value.sql_type() == Some(to) => value,
        _ => Value::Null,
    }
}

/// A double's text as Java writes it (`Double.toString`), as ksqlDB's CAST does: `1.0`,
/// `0.001`, `1.0E7`, `1.5E-5`, `Infinity`, `NaN`; the digits are the shortest that read back.
fn java_double(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let magnitude = x.abs();
    if magnitude == 0.0 || (1e-3..1e7).contains(&magnitude) {
        let text = format!("{x}");
        return if text.contains('.') { text } else { text + ".0" };
    }
    let text = format!("{x:e}");
    let (mantissa, exp) = text.split_once('e').expect("`{:e}` writes an exponent");
    let point = if mantissa.contains('.') { "" } else { ".0" };
    format!("{mantissa}{point}E{exp}")
}

/// A double from text as Java reads it for a CAST: decimal digits, a point, an exponent, and
/// the words `Infinity` and `NaN` (Rust's parser also takes `inf`, which Java refuses).
fn parse_double(text: &str) -> Option<f64> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    match unsigned {
        "Infinity" | "NaN" => text.replace("Infinity", "inf").parse().ok(),
        _ if unsigned.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+')) => {
            text.parse().ok()
        }
        _ => None,
    }
}

/// Whether CAST can turn a value of type `from` into one of type `to` (ksqlDB's casts among
/// these types: numbers and strings both ways, BOOLEAN to and from STRING).
pub fn casts(from: SqlType, to: SqlType) -> bool {
    from == to || to == SqlType::Text || from == SqlType::Text || (from.is_numeric() && to.is_numeric())
}

/// `text LIKE pattern [ESCAPE escape]`: `%` matches any run of characters, `_` any one
/// character, and every other character itself (case matters, as in ksqlDB); `escape` followed
/// by a character matches that character itself (`%`, `_` or `escape`).
pub fn like(text: &str, pattern: &str, escape: Option<char>) -> bool {
    let text: Vec<char> = text.chars().collect();
    let mut chars = pattern.chars();
    let mut pattern = Vec::with_capacity(pattern.len());
    while let Some(c) = chars.next() {
        pattern.push(match c {
            // An escape at the end of the pattern matches itself.
            c if Some(c) == escape => Wildcard::Char(chars.next().unwrap_or(c)),
            '%' => Wildcard::AnyRun,
            '_' => Wildcard::AnyOne,
            c => Wildcard::Char(c),
        });
    }
    like_chars(&text, &pattern)
}

/// A LIKE pattern's element.
#[derive(Clone, Copy, PartialEq)]
enum Wildcard {
    /// `%`
    AnyRun,
    /// `_`
    AnyOne,
    /// A character that matches itself.
    Char(char),
}

fn like_chars(text: &[char], pattern: &[Wildcard]) -> bool {
    // The classic matcher: on a mismatch, go back to the last `%` and let it take one more
    // character. Linear in practice, quadratic at worst.
    let (mut t, mut p) = (0, 0);
    let mut last_percent: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(Wildcard::AnyRun) => {
                last_percent = Some((p, t));
                p += 1;
            }
            Some(Wildcard::AnyOne) => {
                t += 1;
                p += 1;
            }
            Some(&Wildcard::Char(c)) if c == text[t] => {
                t += 1;
                p += 1;
            }
            _ => match last_percent {
                Some((percent, taken)) => {
                    last_percent = Some((percent, taken + 1));
                    p = percent + 1;
                    t = taken + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|w| *w == Wildcard::AnyRun)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Value {
        Value::Text(s.to_owned())
    }

    #[test]
    fn round_takes_halves_up_and_scales_either_side_of_the_point() {
        assert_eq!(Scalar::Round.apply(vec![Value::Float(2.5)]), Value::Int(3));
        assert_eq!(Scalar::Round.apply(vec![Value::Float(-2.5)]), Value::Int(-2));
        assert_eq!(Scalar::Round.apply(vec![Value::Float(0.499_999_999_999_999_94)]), Value::Int(0));
        assert_eq!(Scalar::Round.apply(vec![Value::Int(7)]), Value::Int(7));
        assert_eq!(Scalar::Round.apply(vec![Value::Float(1e300)]), Value::Null);
        let round = |x: f64, scale: i64| Scalar::Round.apply(vec![Value::Float(x), Value::Int(scale)]);
        assert_eq!(round(1.2345, 2), Value::Float(1.23));
        // The decimal written, not the double below it: as ksqlDB.
        assert_eq!(round(1.005, 2), Value::Float(1.01));
        assert_eq!(round(0.285, 2), Value::Float(0.29));
        assert_eq!(round(-0.285, 2), Value::Float(-0.28), "halves towards positive infinity");
        assert_eq!(round(-0.2851, 2), Value::Float(-0.29));
        assert_eq!(round(9.995, 2), Value::Float(10.0));
        assert_eq!(round(0.004, 2), Value::Float(0.0));
        assert!(matches!(round(-0.004, 2), Value::Float(z) if z == 0.0 && z.is_sign_positive()), "no -0.0");
        assert_eq!(round(0.0004, 2), Value::Float(0.0));
        assert_eq!(round(0.5, 0), Value::Float(1.0));
        assert_eq!(round(1e300, 2), Value::Float(1e300));
        assert_eq!(round(123.456, 400), Value::Float(123.456));
        assert_eq!(round(123.456, -400), Value::Float(0.0));
        assert_eq!(Scalar::Round.apply(vec![Value::Int(1250), Value::Int(-2)]), Value::Float(1300.0));
        assert_eq!(Scalar::Round.apply(vec![Value::Int(-1250), Value::Int(-2)]), Value::Float(-1200.0));
    }

    #[test]
    fn numbers_keep_their_type_and_overflow_to_null() {
        assert_eq!(Scalar::Abs.apply(vec![Value::Int(-3)]), Value::Int(3));
        assert_eq!(Scalar::Abs.apply(vec![Value::Int(i64::MIN)]), Value::Null);
        assert_eq!(Scalar::Ceil.apply(vec![Value::Float(1.2)]), Value::Float(2.0));
        assert_eq!(Scalar::Floor.apply(vec![Value::Float(-1.2)]), Value::Float(-2.0));
        assert_eq!(Scalar::Floor.apply(vec![Value::Int(4)]), Value::Int(4));
        assert_eq!(Scalar::Abs.apply(vec![text("x")]), Value::Null, "a string is not a number");
    }

    #[test]
    fn strings_count_characters_not_bytes() {
        assert_eq!(Scalar::Len.apply(vec![text("Zürich")]), Value::Int(6));
        assert_eq!(Scalar::Ucase.apply(vec![text("straße")]), text("STRASSE"));
        assert_eq!(Scalar::Trim.apply(vec![text("  a b \t")]), text("a b"));
        assert_eq!(Scalar::Substring.apply(vec![text("Zürich"), Value::Int(2), Value::Int(3)]), text("üri"));
        assert_eq!(Scalar::Substring.apply(vec![text("Zürich"), Value::Int(-2)]), text("ch"));
        assert_eq!(Scalar::Substring.apply(vec![text("abc"), Value::Int(9)]), text(""));
        assert_eq!(Scalar::Substring.apply(vec![text("abc"), Value::Int(-9), Value::Int(2)]), text("ab"));
        assert_eq!(Scalar::Substring.apply(vec![text("abc"), Value::Null]), Value::Null);
    }

    #[test]
    fn nulls_pass_through_except_where_a_function_is_about_them() {
        assert_eq!(Scalar::Ucase.apply(vec![Value::Null]), Value::Null);
        assert_eq!(Scalar::Concat.apply(vec![text("a"), Value::Null, text("b")]), text("ab"));
        assert_eq!(Scalar::Coalesce.apply(vec![Value::Null, Value::Int(2), Value::Int(3)]), Value::Int(2));
        assert_eq!(Scalar::Coalesce.apply(vec![Value::Null, Value::Null]), Value::Null);
        assert_eq!(Scalar::Ifnull.apply(vec![text("a"), text("b")]), text("a"));
    }

    #[test]
    fn casts_give_null_where_no_value_of_the_type_exists() {
        assert_eq!(cast(text(" 42 "), SqlType::Bigint), Value::Int(42));
        assert_eq!(cast(text("4.5"), SqlType::Bigint), Value::Null);
        assert_eq!(cast(text("4.5"), SqlType::Double), Value::Float(4.5));
        assert_eq!(cast(text("inf"), SqlType::Double), Value::Null, "Java's word is Infinity");
        assert_eq!(cast(text("-Infinity"), SqlType::Double), Value::Float(f64::NEG_INFINITY));
        assert_eq!(cast(Value::Float(-4.9), SqlType::Bigint), Value::Int(-4));
        assert_eq!(cast(Value::Float(1e19), SqlType::Bigint), Value::Null);
        assert_eq!(cast(Value::Int(3), SqlType::Text), text("3"));
        assert_eq!(cast(Value::Float(0.5), SqlType::Text), text("0.5"));
        // As Java writes doubles.
        for (x, java) in [(1.0, "1.0"), (1e20, "1.0E20"), (1.5e-5, "1.5E-5"), (1e7, "1.0E7"), (-0.001, "-0.001")] {
            assert_eq!(cast(Value::Float(x), SqlType::Text), text(java), "{x}");
        }
        assert_eq!(cast(Value::Float(f64::INFINITY), SqlType::Text), text("Infinity"));
        assert_eq!(cast(Value::Bool(true), SqlType::Text), text("true"));
        assert_eq!(cast(text("TRUE"), SqlType::Boolean), Value::Bool(true));
        assert_eq!(cast(text("yes"), SqlType::Boolean), Value::Bool(false), "as Java's parseBoolean");
        assert_eq!(cast(Value::Int(1), SqlType::Boolean), Value::Null);
        assert!(!casts(SqlType::Bigint, SqlType::Boolean));
        assert!(casts(SqlType::Boolean, SqlType::Text));
    }

    #[test]
    fn like_matches_runs_and_single_characters() {
        let like = |text, pattern| like(text, pattern, None);
        assert!(like("Zürich HB", "Z%HB"));
        assert!(like("Zürich", "Z_rich"));
        assert!(like("", "%"));
        assert!(like("abcabd", "%abd"));
        assert!(like("a%b", "a%b"));
        assert!(like("a\\b", "a\\_"), "no escape without ESCAPE");
        assert!(!like("Zürich", "z%"), "case matters");
        assert!(!like("abc", "ab"));
        assert!(!like("ab", "abc"));
        assert!(!like("abcabe", "%abd"));
    }

    #[test]
    fn an_escaped_wildcard_matches_itself_only() {
        assert!(like("100%", "100!%", Some('!')));
        assert!(!like("1000", "100!%", Some('!')));
        assert!(like("a_b", "a!_b", Some('!')));
        assert!(!like("axb", "a!_b", Some('!')));
        assert!(like("a!b", "a!!b", Some('!')), "the escape escapes itself");
        assert!(like("50% off", "%!%%", Some('!')), "an escaped % among wildcards");
        assert!(!like("50 off", "%!%%", Some('!')));
        assert!(like("a!", "a!", Some('!')), "an escape at the end matches itself");
        assert!(like("\u{FFFF}", "_", Some('!')));
    }
}
