//! From a syntax tree to the plan: names resolved against the catalog, aggregates collected,
//! every rule checked with the offset of the offending text.

use super::parser::{Ast, Ident, Statement};
use crate::stream::aggregate::Function;
use crate::stream::catalog::{Catalog, StreamInfo};
use crate::stream::expr::Expr;
use crate::stream::plan::{AggregateCall, Emit, Named, Plan, Source};
use crate::stream::window::{DEFAULT_GRACE, Windowing};

type Failure = (usize, String);

struct Planner<'a> {
    info: StreamInfo,
    statement: &'a Statement,
    columns: Vec<String>,
    group_by: Vec<Named>,
    aggregates: Vec<AggregateCall>,
}

pub(super) fn plan(statement: &Statement, catalog: &Catalog) -> Result<Plan, Failure> {
    let from = &statement.from;
    let info = catalog.stream(&from.text).ok_or_else(|| {
        (from.at, format!("unknown stream `{}`; known streams: {}", from.text, catalog.names().join(", ")))
    })?;
    let after_from = statement.alias.as_ref().unwrap_or(from);
    let after_from = after_from.at + after_from.text.len();
    let Some(clause) = &statement.window else {
        return Err((
            after_from,
            "expected WINDOW TUMBLING, HOPPING or SESSION after FROM: stream queries aggregate per window".into(),
        ));
    };
    let grace = clause.grace.unwrap_or(DEFAULT_GRACE);
    let windowing = match clause.kind.text.as_str() {
        "HOPPING" => Windowing::hopping(clause.size, clause.advance.unwrap_or(clause.size), grace),
        "SESSION" => Windowing::session(clause.size, grace),
        _ => Windowing::tumbling(clause.size, grace),
    }
    .map_err(|error| (clause.kind.at, error.to_string()))?;

    let mut planner = Planner { info, statement, columns: Vec::new(), group_by: Vec::new(), aggregates: Vec::new() };
    let filter = statement.filter.as_ref().map(|ast| planner.input(ast, "WHERE")).transpose()?;
    if statement.group_by.is_empty() {
        return Err((statement.end, "expected GROUP BY: a windowed aggregation groups its records by a key".into()));
    }
    for (i, ast) in statement.group_by.iter().enumerate() {
        let expr = planner.input(ast, "GROUP BY")?;
        let name = match ast {
            Ast::Column { name, .. } => name.text.clone(),
            _ => format!("KSQL_COL_{i}"),
        };
        planner.group_by.push(Named { name, expr });
    }
    let mut select: Vec<Named> = Vec::new();
    for (i, item) in statement.select.iter().enumerate() {
        let expr = planner.output(&item.expr)?;
        let name = match (&item.alias, &item.expr) {
            (Some(alias), _) => alias.text.clone(),
            (None, Ast::Column { name, .. }) => name.text.clone(),
            (None, _) => format!("KSQL_COL_{i}"),
        };
        if select.iter().any(|named| named.name.eq_ignore_ascii_case(&name)) {
            let at = item.alias.as_ref().map_or(item.expr.at(), |a| a.at);
            return Err((at, format!("the output column `{name}` is named twice; give one an alias with AS")));
        }
        select.push(Named { name, expr });
    }
    let having = statement.having.as_ref().map(|ast| planner.output(ast)).transpose()?;
    let Planner { info, columns, group_by, aggregates, .. } = planner;
    Ok(Plan {
        name: statement.name.text.clone(),
        output: statement.output,
        source: Source { stream: info.stream, types: vec![info.type_name], subscription: info.subscription },
        columns,
        filter,
        group_by,
        windowing,
        aggregates,
        select,
        having,
        emit: statement.emit.unwrap_or(Emit::Changes),
    })
}

fn is_window_bound(name: &Ident) -> Option<Expr> {
    match name.text.to_ascii_uppercase().as_str() {
        "WINDOWSTART" => Some(Expr::WindowStart),
        "WINDOWEND" => Some(Expr::WindowEnd),
        _ => None,
    }
}

impl Planner<'_> {
    /// An expression over the input row (WHERE, GROUP BY, aggregate arguments).
    fn input(&mut self, ast: &Ast, clause: &str) -> Result<Expr, Failure> {
        Ok(match ast {
            Ast::Literal(value, _) => Expr::Literal(value.clone()),
            Ast::Column { qualifier, name } => {
                self.check_qualifier(qualifier.as_ref())?;
                if let Some(_bound) = is_window_bound(name) {
                    return Err((
                        name.at,
                        format!(
                            "{} is a column of the output: use it in SELECT or HAVING, not in {clause}",
                            name.text.to_ascii_uppercase()
                        ),
                    ));
                }
                if name.text.eq_ignore_ascii_case("ROWTIME") {
                    return Ok(Expr::RowTime);
                }
                Expr::Column(self.column(name)?)
            }
            Ast::Call { name, .. } => {
                function_of(name)?;
                return Err((name.at, format!("aggregate functions belong in SELECT or HAVING, not in {clause}")));
            }
            Ast::Not(e, _) => Expr::Not(Box::new(self.input(e, clause)?)),
            Ast::Neg(e, _) => Expr::Neg(Box::new(self.input(e, clause)?)),
            Ast::IsNull(e, negated) => Expr::IsNull { expr: Box::new(self.input(e, clause)?), negated: *negated },
            Ast::Binary(op, l, r) => Expr::binary(*op, self.input(l, clause)?, self.input(r, clause)?),
        })
    }

    /// An expression over a group's window (SELECT, HAVING).
    fn output(&mut self, ast: &Ast) -> Result<Expr, Failure> {
        match ast {
            Ast::Literal(value, _) => return Ok(Expr::Literal(value.clone())),
            Ast::Column { qualifier: None, name } if is_window_bound(name).is_some() => {
                return Ok(is_window_bound(name).expect("checked"));
            }
            Ast::Call { name, star, args } => return self.aggregate(name, *star, args),
            _ => {}
        }
        // A GROUP BY expression, written again.
        if !contains_call(ast) {
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
                if !name.text.eq_ignore_ascii_case("ROWTIME") {
                    self.column(name)?;
                }
                return Err((
                    name.at,
                    format!("`{}` is neither in GROUP BY nor inside an aggregate function", name.text),
                ));
            }
            Ast::Not(e, _) => Expr::Not(Box::new(self.output(e)?)),
            Ast::Neg(e, _) => Expr::Neg(Box::new(self.output(e)?)),
            Ast::IsNull(e, negated) => Expr::IsNull { expr: Box::new(self.output(e)?), negated: *negated },
            Ast::Binary(op, l, r) => Expr::binary(*op, self.output(l)?, self.output(r)?),
            Ast::Literal(..) | Ast::Call { .. } => unreachable!("handled above"),
        })
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
                if let Some(inner) = find_call(arg) {
                    return Err((inner.at, "an aggregate function cannot take another aggregate".into()));
                }
                AggregateCall { function, argument: Some(self.input(arg, "an aggregate's argument")?) }
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
        let canonical = match &self.info.columns {
            None => name.text.clone(),
            Some(known) => {
                let found = known.iter().find(|c| **c == name.text);
                let found = found.or_else(|| known.iter().find(|c| c.eq_ignore_ascii_case(&name.text)));
                match found {
                    Some(column) => column.clone(),
                    None => {
                        return Err((
                            name.at,
                            format!(
                                "stream `{}` has no column `{}`; its columns: {}, ROWTIME",
                                self.info.stream,
                                name.text,
                                known.join(", ")
                            ),
                        ));
                    }
                }
            }
        };
        Ok(match self.columns.iter().position(|c| *c == canonical) {
            Some(i) => i,
            None => {
                self.columns.push(canonical);
                self.columns.len() - 1
            }
        })
    }
}

fn function_of(name: &Ident) -> Result<Function, Failure> {
    Function::by_name(&name.text)
        .ok_or_else(|| (name.at, format!("unknown function `{}`; expected COUNT, SUM, MIN, MAX or AVG", name.text)))
}

fn contains_call(ast: &Ast) -> bool {
    find_call(ast).is_some()
}

fn find_call(ast: &Ast) -> Option<&Ident> {
    match ast {
        Ast::Call { name, .. } => Some(name),
        Ast::Literal(..) | Ast::Column { .. } => None,
        Ast::Not(e, _) | Ast::Neg(e, _) | Ast::IsNull(e, _) => find_call(e),
        Ast::Binary(_, l, r) => find_call(l).or_else(|| find_call(r)),
    }
}
