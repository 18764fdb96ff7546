//! From a syntax tree to the plan: names resolved against the catalog, aggregates collected,
//! every rule checked with the offset of the offending text.

use std::time::Duration;

use super::parser::{Ast, Ident, Property, SelectItem, Statement, TimeSpan, WindowClause};
use crate::stream::aggregate::Function;
use crate::stream::catalog::{Catalog, Field, NameCase, StreamInfo};
use crate::stream::expr::{BinaryOp, Expr};
use crate::stream::plan::{AggregateCall, Column, Emit, Named, OutputKind, Plan, Sink, Source};
use crate::stream::scalar::{Scalar, Takes, casts, common_type};
use crate::stream::value::{SqlType, Value};
use crate::stream::window::{DEFAULT_GRACE, WindowError, Windowing, too_large};

type Failure = (usize, String);

/// What an expression is planned over: the input record (in a clause) or a group's window.
#[derive(Clone, Copy)]
enum Over<'c> {
    Input(&'c str),
    Output,
}

struct Planner<'a> {
    info: StreamInfo,
    statement: &'a Statement,
    /// Whether the query has a WINDOW (WINDOWSTART and WINDOWEND are its columns).
    windowed: bool,
    columns: Vec<Column>,
    group_by: Vec<Named>,
    aggregates: Vec<AggregateCall>,
}

pub(super) fn plan(statement: &Statement, catalog: &Catalog) -> Result<Plan, Failure> {
    let from = &statement.from;
    let info = catalog.lookup(&from.text, NameCase::of(from.quoted)).ok_or_else(|| {
        (from.at, format!("unknown stream `{}`; known streams: {}", from.text, catalog.names().join(", ")))
    })?;
    let after_from = statement.alias.as_ref().unwrap_or(from).end;
    let windowing = match &statement.window {
        Some(clause) => windowing(clause)?,
        // Without WINDOW, one aggregate per key over all time (ksqlDB's non-windowed table), or
        // without GROUP BY either, a row per record.
        None => {
            if statement.emit == Some(Emit::Final) {
                return Err((
                    statement.emit_at,
                    "EMIT FINAL needs a WINDOW: without one no window ever closes; use EMIT CHANGES".into(),
                ));
            }
            Windowing::global()
        }
    };
    let per_record = statement.window.is_none() && statement.group_by.is_empty();
    if per_record {
        refuse_aggregation_without_group_by(statement, after_from)?;
    } else if let Some(first) = statement.partition_by.first() {
        return Err((
            first.at(),
            "PARTITION BY re-keys the records of a query without WINDOW and GROUP BY; an aggregation's rows \
             are keyed by its GROUP BY"
                .into(),
        ));
    }

    let mut planner = Planner {
        info,
        statement,
        windowed: windowing.is_windowed(),
        columns: Vec::new(),
        group_by: Vec::new(),
        aggregates: Vec::new(),
    };
    if let Some(filter) = &statement.filter {
        planner.check_condition(filter, "WHERE")?;
    }
    let filter = statement.filter.as_ref().map(|ast| planner.input(ast, "WHERE")).transpose()?;
    if statement.group_by.is_empty() && !per_record {
        return Err((statement.end, "expected GROUP BY: a windowed aggregation groups its records by a key".into()));
    }
    let mut names = Synthetic::new(statement.group_by.iter().map(|ast| (None, ast)));
    for ast in &statement.group_by {
        let expr = planner.input(ast, "GROUP BY")?;
        let name = written_name(None, ast).map_or_else(|| names.next(), str::to_owned);
        planner.group_by.push(Named { name, expr });
    }
    let mut names = Synthetic::new(statement.select.iter().map(|item| (item.alias.as_ref(), &item.expr)));
    let mut select: Vec<Named> = Vec::new();
    for item in &statement.select {
        if let Ast::Star(at) = item.expr {
            for named in planner.every_field(at, per_record)? {
                if select.iter().any(|selected| selected.name.eq_ignore_ascii_case(&named.name)) {
                    return Err((at, format!("the output column `{}` is named twice", named.name)));
                }
                select.push(named);
            }
            continue;
        }
        let expr = match per_record {
            true => planner.input(&item.expr, "SELECT")?,
            false => planner.output(&item.expr)?,
        };
        let name = written_name(item.alias.as_ref(), &item.expr).map_or_else(|| names.next(), str::to_owned);
        if select.iter().any(|named| named.name.eq_ignore_ascii_case(&name)) {
            let at = item.alias.as_ref().map_or(item.expr.at(), |a| a.at);
            return Err((at, format!("the output column `{name}` is named twice; give one an alias with AS")));
        }
        select.push(Named { name, expr });
    }
    // After SELECT: the columns in the order the DSL reads them.
    let partition_by = statement
        .partition_by
        .iter()
        .map(|ast| planner.input(ast, "PARTITION BY"))
        .collect::<Result<_, _>>()?;
    if let Some(having) = &statement.having {
        planner.check_condition(having, "HAVING")?;
    }
    let having = match &statement.having {
        Some(ast) => Some(planner.output(ast).map_err(|failure| naming_an_alias(failure, ast, &statement.select))?),
        None => None,
    };
    let Planner { info, columns, group_by, aggregates, .. } = planner;
    if let (Some(first), true) = (statement.group_by.first(), aggregates.is_empty()) {
        // As ksqlDB: without an aggregate, each update would only repeat the group's key.
        return Err((
            first.at(),
            "a GROUP BY needs an aggregate function (COUNT, SUM, MIN, MAX or AVG) in SELECT or HAVING; \
             to re-key records without aggregating, use PARTITION BY without WINDOW"
                .into(),
        ));
    }
    Ok(Plan {
        name: statement.name.text.clone(),
        sink: sink(&statement.properties)?,
        output: statement.output,
        source: Source {
            stream: info.stream,
            types: vec![info.type_name],
            by_name: info.by_name,
            subscription: info.subscription,
        },
        columns,
        filter,
        group_by,
        partition_by,
        windowing,
        aggregates,
        select,
        having,
        emit: statement.emit.unwrap_or(Emit::Changes),
    })
}

/// A query without WINDOW and GROUP BY selects from each record: it has no aggregates.
fn refuse_aggregation_without_group_by(statement: &Statement, after_from: usize) -> Result<(), Failure> {
    if statement.output == OutputKind::Table {
        return Err((
            after_from,
            "expected WINDOW TUMBLING, HOPPING or SESSION after FROM, or a GROUP BY: a TABLE aggregates per key \
             (CREATE STREAM selects from each record without them)"
                .into(),
        ));
    }
    if let Some(call) = statement.select.iter().find_map(|item| find_aggregate(&item.expr)) {
        function_of(call)?;
        return Err((call.at, "aggregate functions need a GROUP BY".into()));
    }
    if let Some(having) = &statement.having {
        return Err((having.at(), "HAVING needs a GROUP BY; WHERE filters records".into()));
    }
    Ok(())
}

/// The windows of a WINDOW clause.
fn windowing(clause: &WindowClause) -> Result<Windowing, Failure> {
    let size = fitting(clause.size, "SIZE")?;
    let grace = clause.grace.map(|grace| fitting(grace, "GRACE PERIOD")).transpose()?.unwrap_or(DEFAULT_GRACE);
    match clause.kind.text.as_str() {
        "HOPPING" => {
            let advance = clause.advance.map(|advance| fitting(advance, "ADVANCE BY")).transpose()?;
            Windowing::hopping(size, advance.unwrap_or(size), grace)
        }
        "SESSION" => Windowing::session(size, grace),
        _ => Windowing::tumbling(size, grace),
    }
    .map_err(|error| {
        // Pointed at the value at fault.
        let at = match &error {
            WindowError::Empty("ADVANCE BY")
            | WindowError::TooLarge("ADVANCE BY")
            | WindowError::AdvanceExceedsSize { .. }
            | WindowError::TooManyWindows { .. } => clause.advance.map_or(clause.size.at, |advance| advance.at),
            WindowError::TooLarge("GRACE PERIOD") => clause.grace.map_or(clause.size.at, |grace| grace.at),
            _ => clause.size.at,
        };
        (at, error.to_string())
    })
}

/// The properties of the `WITH` clause that tramline takes, as ksqlDB's `CREATE ... AS SELECT`
/// has them; any other is refused rather than ignored.
const PROPERTIES: &str = "KAFKA_TOPIC, PARTITIONS, FORMAT, VALUE_FORMAT and KEY_FORMAT";

fn sink(properties: &[Property]) -> Result<Sink, Failure> {
    let mut sink = Sink::default();
    for (i, property) in properties.iter().enumerate() {
        let name = property.name.text.to_ascii_uppercase();
        if properties[..i].iter().any(|earlier| earlier.name.text.eq_ignore_ascii_case(&name)) {
            return Err((property.name.at, format!("the property {name} is given twice")));
        }
        let text = match &property.value {
            Value::Text(text) => Some(text.as_str()),
            _ => None,
        };
        let wrong = |what: &str| (property.at, format!("{name} takes {what}"));
        match name.as_str() {
            "KAFKA_TOPIC" => {
                let topic = text.ok_or_else(|| wrong("a topic's name in quotes"))?;
                if let Err(why) = topic_name(topic) {
                    return Err((property.at, format!("`{topic}` cannot be a topic's name: {why}")));
                }
                sink.topic = Some(topic.to_owned());
            }
            "PARTITIONS" => {
                let partitions = match property.value {
                    Value::Int(n) => u32::try_from(n).ok().filter(|n| *n > 0),
                    _ => None,
                };
                sink.partitions = Some(partitions.ok_or_else(|| wrong("a whole number of partitions, at least 1"))?);
            }
            // Rows are JSON objects, their keys text: said rather than written otherwise.
            "FORMAT" | "VALUE_FORMAT" if text.is_some_and(|f| f.eq_ignore_ascii_case("JSON")) => {}
            "FORMAT" | "VALUE_FORMAT" => return Err(wrong("'JSON' only: tramline writes rows as JSON objects")),
            "KEY_FORMAT" if text.is_some_and(|f| f.eq_ignore_ascii_case("KAFKA")) => {}
            "KEY_FORMAT" => return Err(wrong("'KAFKA' only: tramline writes a row's key as text")),
            _ => {
                return Err((
                    property.name.at,
                    format!("unknown property `{}`; a query takes {PROPERTIES}", property.name.text),
                ));
            }
        }
    }
    Ok(sink)
}

/// Kafka's rule for a topic's name: 1 to 249 ASCII letters, digits, `.`, `_` and `-`, and not
/// `.` or `..`.
fn topic_name(topic: &str) -> Result<(), &'static str> {
    let allowed = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-');
    match topic {
        "" => Err("it is empty"),
        "." | ".." => Err("Kafka refuses `.` and `..`"),
        _ if topic.len() > 249 => Err("it is longer than 249 characters"),
        _ if !topic.bytes().all(allowed) => Err("use ASCII letters, digits, `.`, `_` and `-`"),
        _ => Ok(()),
    }
}

/// The name an item of a list is written with: its alias, or the column it is.
fn written_name<'a>(alias: Option<&'a Ident>, ast: &'a Ast) -> Option<&'a str> {
    match (alias, ast) {
        (Some(alias), _) => Some(&alias.text),
        (None, Ast::Column { name, .. }) => Some(&name.text),
        (None, _) => None,
    }
}

/// ksqlDB's names for the expressions of a list written without one: `KSQL_COL_0`,
/// `KSQL_COL_1`, … in order, skipping any name the list writes itself.
struct Synthetic<'a> {
    written: Vec<&'a str>,
    next: usize,
}

impl<'a> Synthetic<'a> {
    fn new(items: impl Iterator<Item = (Option<&'a Ident>, &'a Ast)>) -> Self {
        Synthetic { written: items.filter_map(|(alias, ast)| written_name(alias, ast)).collect(), next: 0 }
    }

    fn next(&mut self) -> String {
        loop {
            let name = format!("KSQL_COL_{}", self.next);
            self.next += 1;
            if !self.written.iter().any(|written| written.eq_ignore_ascii_case(&name)) {
                return name;
            }
        }
    }
}

/// A duration of the WINDOW clause, if event times (i64 milliseconds) can hold it.
fn fitting(span: TimeSpan, what: &str) -> Result<Duration, Failure> {
    match too_large(span.duration) {
        true => Err((
            span.at,
            format!("the {what} is too large: at most {} milliseconds (about 292 million years)", i64::MAX),
        )),
        false => Ok(span.duration),
    }
}

/// Whether `name` is the pseudo-column `upper` (ROWTIME, WINDOWSTART, WINDOWEND): in any case
/// unquoted, exactly as ksqlDB names it when quoted (`` `rowtime` `` is a field of the event).
fn is_pseudo(name: &Ident, upper: &str) -> bool {
    match name.quoted {
        true => name.text == upper,
        false => name.text.eq_ignore_ascii_case(upper),
    }
}

fn is_rowtime(name: &Ident) -> bool {
    is_pseudo(name, "ROWTIME")
}

fn is_window_bound(name: &Ident) -> Option<Expr> {
    if is_pseudo(name, "WINDOWSTART") {
        Some(Expr::WindowStart)
    } else if is_pseudo(name, "WINDOWEND") {
        Some(Expr::WindowEnd)
    } else {
        None
    }
}

impl Planner<'_> {
    /// An expression over the input row (WHERE, GROUP BY, aggregate arguments).
    fn input(&mut self, ast: &Ast, clause: &str) -> Result<Expr, Failure> {
        Ok(match ast {
            Ast::Star(at) => return Err((*at, format!("`*` stands for every column in SELECT, not in {clause}"))),
            Ast::Literal(value, _) => Expr::Literal(value.clone()),
            Ast::Column { qualifier, name } => {
                self.check_qualifier(qualifier.as_ref())?;
                if let Some(_bound) = is_window_bound(name) {
                    let bound = name.text.to_ascii_uppercase();
                    return Err((
                        name.at,
                        match self.windowed {
                            true => format!(
                                "{bound} is a column of the output: use it in SELECT or HAVING, not in {clause}"
                            ),
                            false => format!("{bound} is a column of windowed queries; this one has no WINDOW"),
                        },
                    ));
                }
                if is_rowtime(name) {
                    return Ok(Expr::RowTime);
                }
                Expr::Column(self.column(name)?)
            }
            Ast::Call { name, star, args } if Scalar::by_name(&name.text).is_some() => {
                self.call(name, *star, args, Over::Input(clause))?
            }
            Ast::Call { name, .. } => {
                function_of(name)?;
                return Err((name.at, format!("aggregate functions belong in SELECT or HAVING, not in {clause}")));
            }
            Ast::Case { branches, otherwise, .. } => self.case(branches, otherwise.as_deref(), Over::Input(clause))?,
            Ast::Cast { expr, to, .. } => self.cast(expr, to, Over::Input(clause))?,
            Ast::Not(e, _) => {
                self.check_operand(e, NOT_TAKES, |found| found == SqlType::Boolean)?;
                Expr::Not(Box::new(self.input(e, clause)?))
            }
            Ast::Neg(e, _) => {
                self.check_operand(e, NEG_TAKES, SqlType::is_numeric)?;
                Expr::Neg(Box::new(self.input(e, clause)?))
            }
            Ast::IsNull(e, negated) => Expr::IsNull { expr: Box::new(self.input(e, clause)?), negated: *negated },
            Ast::Binary(op, l, r) => {
                self.check_comparison(*op, l, r)?;
                Expr::binary(*op, self.input(l, clause)?, self.input(r, clause)?)
            }
        })
    }

    /// An expression over a group's window (SELECT, HAVING).
    fn output(&mut self, ast: &Ast) -> Result<Expr, Failure> {
        match ast {
            Ast::Literal(value, _) => return Ok(Expr::Literal(value.clone())),
            Ast::Column { qualifier: None, name } if is_window_bound(name).is_some() => {
                if !self.windowed {
                    return Err((
                        name.at,
                        format!(
                            "{} is a column of windowed queries; this one has no WINDOW",
                            name.text.to_ascii_uppercase()
                        ),
                    ));
                }
                return Ok(is_window_bound(name).expect("checked"));
            }
            Ast::Call { name, star, args } if Scalar::by_name(&name.text).is_none() => {
                return self.aggregate(name, *star, args);
            }
            _ => {}
        }
        // A GROUP BY expression, written again.
        if find_aggregate(ast).is_none() {
            let before = self.columns.len();
            if let Ok(expr) = self.input(ast, "SELECT")
                && let Some(i) = self.group_by.iter().position(|g| g.expr == expr)
            {
                return Ok(Expr::Group(i));
            }
            // Columns that only SELECT named are not read: the error below stands.
            self.columns.truncate(before);
        }
        Ok(match ast {
            Ast::Column { qualifier, name } => {
                self.check_qualifier(qualifier.as_ref())?;
                if !is_rowtime(name) {
                    self.column(name)?;
                }
                return Err((
                    name.at,
                    format!("`{}` is neither in GROUP BY nor inside an aggregate function", name.text),
                ));
            }
            Ast::Not(e, _) => {
                self.check_operand(e, NOT_TAKES, |found| found == SqlType::Boolean)?;
                Expr::Not(Box::new(self.output(e)?))
            }
            Ast::Neg(e, _) => {
                self.check_operand(e, NEG_TAKES, SqlType::is_numeric)?;
                Expr::Neg(Box::new(self.output(e)?))
            }
            Ast::IsNull(e, negated) => Expr::IsNull { expr: Box::new(self.output(e)?), negated: *negated },
            Ast::Binary(op, l, r) => {
                self.check_comparison(*op, l, r)?;
                Expr::binary(*op, self.output(l)?, self.output(r)?)
            }
            Ast::Call { name, star, args } => self.call(name, *star, args, Over::Output)?,
            Ast::Case { branches, otherwise, .. } => self.case(branches, otherwise.as_deref(), Over::Output)?,
            Ast::Cast { expr, to, .. } => self.cast(expr, to, Over::Output)?,
            Ast::Star(at) => return Err((*at, "`*` stands for every column of a record".into())),
            Ast::Literal(..) => unreachable!("handled above"),
        })
    }

    /// `SELECT *`: every field of the event, as its schema lists them (by name), for a query
    /// that selects from each record.
    fn every_field(&mut self, at: usize, per_record: bool) -> Result<Vec<Named>, Failure> {
        if !per_record {
            return Err((at, "SELECT * selects the columns of each record; an aggregation names its columns".into()));
        }
        let Some(mut fields) = self.info.columns.clone() else {
            return Err((
                at,
                "SELECT * needs the event's fields, which are unknown here (no schema): name the columns".into(),
            ));
        };
        // By name: the order does not hang on how a JSON Schema's properties are kept.
        fields.sort_by(|a, b| a.name.cmp(&b.name));
        let mut every = Vec::with_capacity(fields.len());
        for field in fields {
            let name = Ident { text: field.name.clone(), at, end: at + 1, quoted: true };
            let expr = self.input(&Ast::Column { qualifier: None, name }, "SELECT")?;
            every.push(Named { name: field.name, expr });
        }
        Ok(every)
    }

    fn plan_over(&mut self, ast: &Ast, over: Over<'_>) -> Result<Expr, Failure> {
        match over {
            Over::Input(clause) => self.input(ast, clause),
            Over::Output => self.output(ast),
        }
    }

    /// A scalar function's call, its arguments checked against what it takes.
    fn call(&mut self, name: &Ident, star: bool, args: &[Ast], over: Over<'_>) -> Result<Expr, Failure> {
        let function = Scalar::by_name(&name.text).expect("a scalar function's name");
        let upper = function.name();
        if star {
            return Err((name.at, format!("{upper}(*) is not a function; only COUNT takes *")));
        }
        let (least, most) = function.arity();
        if args.len() < least || args.len() > most {
            let plural = |n: usize| if n == 1 { "" } else { "s" };
            let wanted = match (least, most) {
                (least, usize::MAX) => format!("at least {least} argument{}", plural(least)),
                (least, most) if least == most => format!("{least} argument{}", plural(least)),
                (least, most) => format!("{least} or {most} arguments"),
            };
            return Err((name.at, format!("{upper} takes {wanted}, {} given", args.len())));
        }
        self.check_arguments(function, args)?;
        let args = args.iter().map(|arg| self.plan_over(arg, over)).collect::<Result<_, _>>()?;
        Ok(Expr::Call(function, args))
    }

    /// Refuses an argument of a type the function does not take, when its type is known.
    fn check_arguments(&self, function: Scalar, args: &[Ast]) -> Result<(), Failure> {
        let refuse = |arg: &Ast, found: SqlType, wanted: &str| {
            Err((
                arg.at(),
                format!(
                    "Function '{}' does not accept parameters ({}): it takes {wanted}",
                    function.name(),
                    found.name()
                ),
            ))
        };
        if function.takes() == Takes::AnyOneType {
            return self.check_one_type(&format!("{}'s arguments", function.name()), args.iter());
        }
        for (i, arg) in args.iter().enumerate() {
            let Some(found) = self.type_of(arg) else { continue };
            let whole = "a whole number (BIGINT)";
            match function.takes() {
                Takes::Numbers if !found.is_numeric() => return refuse(arg, found, "a number"),
                Takes::Strings if found != SqlType::Text => return refuse(arg, found, "strings"),
                Takes::StringThenWholeNumbers if i == 0 && found != SqlType::Text => {
                    return refuse(arg, found, "a string first");
                }
                Takes::StringThenWholeNumbers if i > 0 && found != SqlType::Bigint => return refuse(arg, found, whole),
                Takes::NumberThenWholeNumber if i == 0 && !found.is_numeric() => return refuse(arg, found, "a number"),
                Takes::NumberThenWholeNumber if i > 0 && found != SqlType::Bigint => return refuse(arg, found, whole),
                _ => {}
            }
        }
        Ok(())
    }

    /// `CASE WHEN ... END`: conditions, and values of one type (where known).
    fn case(&mut self, branches: &[(Ast, Ast)], otherwise: Option<&Ast>, over: Over<'_>) -> Result<Expr, Failure> {
        for (when, _) in branches {
            self.check_condition(when, "WHEN")?;
        }
        self.check_one_type("CASE's values", branches.iter().map(|(_, then)| then).chain(otherwise))?;
        let mut planned = Vec::with_capacity(branches.len());
        for (when, then) in branches {
            planned.push((self.plan_over(when, over)?, self.plan_over(then, over)?));
        }
        let otherwise = otherwise.map(|ast| self.plan_over(ast, over)).transpose()?;
        // `ELSE NULL` is no ELSE: one plan (and state shape) for both.
        let otherwise = otherwise.filter(|e| *e != Expr::Literal(Value::Null)).map(Box::new);
        Ok(Expr::Case { branches: planned, otherwise })
    }

    /// Refuses `values` of types that never compare (a STRING and a BIGINT), where known:
    /// `what` (COALESCE's arguments, CASE's values) are of one type.
    fn check_one_type<'v>(&self, what: &str, values: impl Iterator<Item = &'v Ast>) -> Result<(), Failure> {
        let mut first_known: Option<(&Ast, SqlType)> = None;
        for value in values {
            let Some(found) = self.type_of(value) else { continue };
            match first_known {
                Some((first, known)) if !known.compares_with(found) => {
                    let (first, value_text) = (describe(first), describe(value));
                    return Err((
                        value.at(),
                        format!(
                            "{what} are of one type, but {first} is {} and {value_text} is {}",
                            known.name(),
                            found.name()
                        ),
                    ));
                }
                Some(_) => {}
                None => first_known = Some((value, found)),
            }
        }
        Ok(())
    }

    /// `CAST(expr AS to)`, refused where no value of the type could come out.
    fn cast(&mut self, expr: &Ast, to: &Ident, over: Over<'_>) -> Result<Expr, Failure> {
        let target = match type_named(&to.text) {
            Some(target) => target,
            None if ["INT", "INTEGER"].iter().any(|int| to.text.eq_ignore_ascii_case(int)) => {
                return Err((to.at, "whole numbers are BIGINT (64 bits) in tramline: cast to BIGINT".into()));
            }
            None => {
                return Err((
                    to.at,
                    format!("unknown type `{}`; expected BIGINT, DOUBLE, STRING (or VARCHAR) or BOOLEAN", to.text),
                ));
            }
        };
        if let Some(from) = self.type_of(expr)
            && !casts(from, target)
        {
            return Err((expr.at(), format!("cannot cast {} ({}) to {}", describe(expr), from.name(), target.name())));
        }
        Ok(Expr::Cast(Box::new(self.plan_over(expr, over)?), target))
    }

    fn aggregate(&mut self, name: &Ident, star: bool, args: &[Ast]) -> Result<Expr, Failure> {
        let function = function_of(name)?;
        let call = match (function, star, args) {
            (Function::Count, true, _) => AggregateCall { function: Function::CountAll, argument: None },
            (_, true, _) => {
                return Err((
                    name.at,
                    format!("{}(*) is not a function; only COUNT takes *", name.text.to_uppercase()),
                ));
            }
            (_, false, [arg]) => {
                if let Some(inner) = find_aggregate(arg) {
                    function_of(inner)?;
                    return Err((inner.at, "an aggregate function cannot take another aggregate".into()));
                }
                let argument = self.input(arg, "an aggregate's argument")?;
                let numeric = matches!(function, Function::Sum | Function::Avg);
                if let Some(found) = self.type_of(arg).filter(|t| numeric && !t.is_numeric()) {
                    return Err((
                        arg.at(),
                        format!(
                            "Function '{}' does not accept parameters ({}): it takes a number",
                            name.text.to_uppercase(),
                            found.name()
                        ),
                    ));
                }
                AggregateCall { function, argument: Some(argument) }
            }
            (_, false, _) => {
                return Err((
                    name.at,
                    format!("{} takes one argument, {} given", name.text.to_uppercase(), args.len()),
                ));
            }
        };
        let slot = match self.aggregates.iter().position(|c| *c == call) {
            Some(slot) => slot,
            None => {
                self.aggregates.push(call);
                self.aggregates.len() - 1
            }
        };
        Ok(Expr::Aggregate(slot))
    }

    fn check_qualifier(&self, qualifier: Option<&Ident>) -> Result<(), Failure> {
        let Some(qualifier) = qualifier else { return Ok(()) };
        let from = &self.statement.from.text;
        let alias = self.statement.alias.as_ref().map(|a| a.text.as_str());
        if qualifier.text.eq_ignore_ascii_case(from) || alias.is_some_and(|a| qualifier.text.eq_ignore_ascii_case(a)) {
            return Ok(());
        }
        Err((
            qualifier.at,
            format!(
                "unknown source `{}`; the query reads `{}`{}",
                qualifier.text,
                from,
                alias.map(|a| format!(" as `{a}`")).unwrap_or_default()
            ),
        ))
    }

    /// The index of a payload column, added to the columns read.
    fn column(&mut self, name: &Ident) -> Result<usize, Failure> {
        let case = NameCase::of(name.quoted);
        let column = match &self.info.columns {
            // Fields unknown (an open catalog): matched in each record.
            None => Column { name: name.text.clone(), case, sql_type: None },
            Some(known) => match self.field(name) {
                Some(field) => Column { name: field.name.clone(), case: NameCase::Exact, sql_type: field.sql_type },
                None => {
                    let names: Vec<&str> = known.iter().map(|f| f.name.as_str()).collect();
                    return Err((
                        name.at,
                        format!(
                            "stream `{}` has no column `{}`; its columns: {}, ROWTIME",
                            self.info.stream,
                            name.text,
                            names.join(", ")
                        ),
                    ));
                }
            },
        };
        let same = |c: &Column| c.case == column.case && column.case.matches(&column.name, &c.name);
        Ok(match self.columns.iter().position(same) {
            Some(i) => i,
            None => {
                self.columns.push(column);
                self.columns.len() - 1
            }
        })
    }

    /// The catalog's field of this name: exact first, then in any case unless quoted.
    fn field(&self, name: &Ident) -> Option<&Field> {
        let known = self.info.columns.as_ref()?;
        let exact = known.iter().find(|f| f.name == name.text);
        exact.or_else(|| known.iter().find(|f| NameCase::of(name.quoted).matches(&name.text, &f.name)))
    }

    /// The type of an expression as far as the catalog tells (nothing in an open catalog).
    fn type_of(&self, ast: &Ast) -> Option<SqlType> {
        match ast {
            Ast::Star(_) => None,
            Ast::Literal(value, _) => value.sql_type(),
            Ast::Column { name, .. } if is_window_bound(name).is_some() => Some(SqlType::Bigint),
            Ast::Column { name, .. } if is_rowtime(name) => Some(SqlType::Bigint),
            Ast::Column { name, .. } => self.field(name)?.sql_type,
            Ast::Call { name, args, .. } if Scalar::by_name(&name.text).is_some() => {
                let types: Vec<Option<SqlType>> = args.iter().map(|arg| self.type_of(arg)).collect();
                Scalar::by_name(&name.text)?.result_type(&types)
            }
            Ast::Case { branches, otherwise, .. } => {
                common_type(branches.iter().map(|(_, then)| then).chain(otherwise.as_deref()).map(|v| self.type_of(v)))
            }
            Ast::Cast { to, .. } => type_named(&to.text),
            Ast::Call { name, args, .. } => match Function::by_name(&name.text)? {
                Function::CountAll | Function::Count => Some(SqlType::Bigint),
                Function::Avg => Some(SqlType::Double),
                Function::Sum | Function::Min | Function::Max => self.type_of(args.first()?),
            },
            Ast::Not(..) | Ast::IsNull(..) => Some(SqlType::Boolean),
            Ast::Neg(e, _) => self.type_of(e),
            Ast::Binary(op, l, r) => match op {
                BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div => {
                    match (self.type_of(l)?, self.type_of(r)?) {
                        (SqlType::Bigint, SqlType::Bigint) => Some(SqlType::Bigint),
                        (SqlType::Text, SqlType::Text) if *op == BinaryOp::Add => Some(SqlType::Text),
                        (l, r) if l.is_numeric() && r.is_numeric() => Some(SqlType::Double),
                        _ => None,
                    }
                }
                _ => Some(SqlType::Boolean),
            },
        }
    }

    /// Refuses LIKE over values that are not strings (it would always be NULL).
    fn check_like(&self, l: &Ast, r: &Ast) -> Result<(), Failure> {
        for side in [l, r] {
            if let Some(found) = self.type_of(side).filter(|found| *found != SqlType::Text) {
                return Err((side.at(), format!("LIKE matches strings, but {} is {}", describe(side), found.name())));
            }
        }
        Ok(())
    }

    /// Refuses a WHERE or HAVING that is not a condition, when its type is known (`HAVING
    /// COUNT(*)` would pass no row, ever), as ksqlDB does.
    fn check_condition(&self, ast: &Ast, clause: &str) -> Result<(), Failure> {
        match self.type_of(ast) {
            Some(found) if found != SqlType::Boolean => Err((
                ast.at(),
                format!("{clause} needs a condition (BOOLEAN), but {} is {}", describe(ast), found.name()),
            )),
            _ => Ok(()),
        }
    }

    /// Refuses a comparison of values that never compare (it would always be NULL), such as
    /// a STRING column with a number.
    fn check_comparison(&self, op: BinaryOp, l: &Ast, r: &Ast) -> Result<(), Failure> {
        use BinaryOp::*;
        self.check_operands(op, l, r)?;
        if let Like { .. } = op {
            return self.check_like(l, r);
        }
        if !matches!(op, Eq | NotEq | Lt | LtEq | Gt | GtEq | IsDistinctFrom) {
            return Ok(());
        }
        match (self.type_of(l), self.type_of(r)) {
            (Some(left), Some(right)) if !left.compares_with(right) => Err((
                l.at(),
                format!("cannot compare {} ({}) with {} ({})", describe(l), left.name(), describe(r), right.name()),
            )),
            _ => Ok(()),
        }
    }
}

const NOT_TAKES: &str = "NOT takes a condition (BOOLEAN)";
const NEG_TAKES: &str = "`-` takes a number";

impl Planner<'_> {
    /// Refuses arithmetic and logic over a type they never compute with (always NULL), as
    /// ksqlDB does: numbers, or two strings (concatenated), for `+`; numbers for `-`, `*` and
    /// `/`; conditions for AND and OR.
    fn check_operands(&self, op: BinaryOp, l: &Ast, r: &Ast) -> Result<(), Failure> {
        use BinaryOp::*;
        let takes = match op {
            And | Or => "conditions (BOOLEAN)",
            Add => "numbers, or two strings",
            Sub | Mul | Div => "numbers",
            _ => return Ok(()),
        };
        let fits = |found: SqlType| match op {
            And | Or => found == SqlType::Boolean,
            Add => found.is_numeric() || found == SqlType::Text,
            _ => found.is_numeric(),
        };
        let symbol = match op {
            And | Or => op.symbol().to_owned(),
            _ => format!("`{}`", op.symbol()),
        };
        let (left, right) = (self.type_of(l), self.type_of(r));
        for (side, found) in [(l, left), (r, right)] {
            if let Some(found) = found.filter(|found| !fits(*found)) {
                return Err((side.at(), format!("{symbol} takes {takes}, but {} is {}", describe(side), found.name())));
            }
        }
        // A string and a number: neither concatenated nor added.
        if let (Some(left), Some(right)) = (left, right)
            && (left == SqlType::Text) != (right == SqlType::Text)
        {
            let (l_name, r_name) = (describe(l), describe(r));
            let message =
                format!("{symbol} takes {takes}, but {l_name} is {} and {r_name} is {}", left.name(), right.name());
            return Err((l.at(), message));
        }
        Ok(())
    }

    /// Refuses NOT or `-` over a type it never computes with (always NULL).
    fn check_operand(&self, operand: &Ast, takes: &str, fits: fn(SqlType) -> bool) -> Result<(), Failure> {
        match self.type_of(operand) {
            Some(found) if !fits(found) => {
                Err((operand.at(), format!("{takes}, but {} is {}", describe(operand), found.name())))
            }
            _ => Ok(()),
        }
    }
}

/// An operand, for messages.
fn describe(ast: &Ast) -> String {
    match ast {
        Ast::Column { name, .. } => format!("`{}`", name.text),
        Ast::Literal(value, _) => value.to_string(),
        Ast::Call { name, .. } => format!("{}(...)", name.text.to_uppercase()),
        Ast::Cast { to, .. } => format!("CAST(... AS {})", to.text.to_uppercase()),
        Ast::Case { .. } => "CASE ... END".to_owned(),
        _ => "the expression".to_owned(),
    }
}

fn function_of(name: &Ident) -> Result<Function, Failure> {
    Function::by_name(&name.text).ok_or_else(|| {
        let scalars: Vec<&str> = Scalar::ALL.iter().map(|f| f.name()).collect();
        (
            name.at,
            format!(
                "unknown function `{}`; the aggregates are COUNT, SUM, MIN, MAX and AVG, the scalar functions {}",
                name.text,
                scalars.join(", ")
            ),
        )
    })
}

/// The type a CAST names (`VARCHAR` is ksqlDB's other name for STRING).
fn type_named(name: &str) -> Option<SqlType> {
    Some(match name.to_ascii_uppercase().as_str() {
        "BIGINT" => SqlType::Bigint,
        "DOUBLE" => SqlType::Double,
        "STRING" | "VARCHAR" => SqlType::Text,
        "BOOLEAN" => SqlType::Boolean,
        _ => return None,
    })
}

/// HAVING's failure, told as what it is when it names an output column of SELECT: ksqlDB's
/// HAVING does not see SELECT's names either.
fn naming_an_alias((at, message): Failure, having: &Ast, select: &[SelectItem]) -> Failure {
    let Some(named) = column_at(having, at) else { return (at, message) };
    let aliased = select.iter().find(|item| {
        item.alias.as_ref().is_some_and(|alias| match alias.quoted || named.quoted {
            true => alias.text == named.text,
            false => alias.text.eq_ignore_ascii_case(&named.text),
        })
    });
    match aliased {
        Some(item) => (
            at,
            format!(
                "`{}` names an output column of SELECT, which HAVING cannot use: write its expression ({}) instead",
                named.text,
                describe(&item.expr)
            ),
        ),
        None => (at, message),
    }
}

/// The unqualified column written at byte `at` of `ast`, if any.
fn column_at(ast: &Ast, at: usize) -> Option<&Ident> {
    match ast {
        Ast::Column { qualifier: None, name } if name.at == at => Some(name),
        Ast::Column { .. } | Ast::Literal(..) | Ast::Star(_) => None,
        Ast::Call { args, .. } => args.iter().find_map(|arg| column_at(arg, at)),
        Ast::Not(e, _) | Ast::Neg(e, _) | Ast::IsNull(e, _) | Ast::Cast { expr: e, .. } => column_at(e, at),
        Ast::Binary(_, l, r) => column_at(l, at).or_else(|| column_at(r, at)),
        Ast::Case { branches, otherwise, .. } => branches
            .iter()
            .flat_map(|(when, then)| [when, then])
            .chain(otherwise.as_deref())
            .find_map(|e| column_at(e, at)),
    }
}

/// The first call of a function that is not a scalar one: an aggregate, or an unknown name.
fn find_aggregate(ast: &Ast) -> Option<&Ident> {
    match ast {
        Ast::Call { name, args, .. } => match Scalar::by_name(&name.text) {
            Some(_) => args.iter().find_map(find_aggregate),
            None => Some(name),
        },
        Ast::Literal(..) | Ast::Column { .. } | Ast::Star(_) => None,
        Ast::Not(e, _) | Ast::Neg(e, _) | Ast::IsNull(e, _) | Ast::Cast { expr: e, .. } => find_aggregate(e),
        Ast::Binary(_, l, r) => find_aggregate(l).or_else(|| find_aggregate(r)),
        Ast::Case { branches, otherwise, .. } => branches
            .iter()
            .flat_map(|(when, then)| [when, then])
            .chain(otherwise.as_deref())
            .find_map(find_aggregate),
    }
}
