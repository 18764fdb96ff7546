//! The ksqlDB grammar subset, parsed with winnow into a syntax tree whose nodes remember their
//! offset in the text, so that the planner's errors point where the parser's do.
//!
//! ```text
//! CREATE (STREAM | TABLE) name [WITH (property = literal [, ...]*)] AS
//! SELECT (* | expr [[AS] alias]) [, ...]* FROM stream [[AS] alias]
//! [WINDOW (TUMBLING (SIZE d [, GRACE PERIOD d])
//!        | HOPPING (SIZE d, ADVANCE BY d [, GRACE PERIOD d])
//!        | SESSION (d [, GRACE PERIOD d]))]
//! [WHERE expr] [GROUP BY expr [, expr]*] [PARTITION BY expr [, expr]*] [HAVING expr]
//! [EMIT (CHANGES | FINAL)] [;]
//! ```
//!
//! Expressions: literals, columns, `+ - * /`, comparisons, `AND OR NOT`, `IS [NOT] NULL`,
//! `IS [NOT] DISTINCT FROM e`, `[NOT] BETWEEN a AND b`, `[NOT] IN (a, ...)`, `[NOT] LIKE
//! pattern [ESCAPE 'c']`, function calls, `CASE WHEN c THEN v ... [ELSE v] END` and `CAST(e AS type)`. BETWEEN and IN are read as the
//! comparisons they stand for (`a <= e AND e <= b`, `e = a OR ...`), which have SQL's NULL
//! semantics.

use std::cell::Cell;
use std::time::Duration;

use winnow::ascii::{digit0, digit1, multispace1};
use winnow::combinator::{alt, cut_err, delimited, eof, fail, not, opt, preceded, repeat, separated, terminated};
use winnow::error::{AddContext, ContextError, ErrMode, ModalResult, StrContext, StrContextValue};
use winnow::prelude::*;
use winnow::stream::{LocatingSlice, Location, Stream};
use winnow::token::{literal, one_of, take_till, take_until, take_while};

use crate::stream::expr::BinaryOp;
use crate::stream::plan::{Emit, OutputKind};
use crate::stream::value::Value;

type In<'i> = LocatingSlice<&'i str>;

/// A name and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    /// The name (without its quotes).
    pub text: String,
    /// Its byte offset in the query.
    pub at: usize,
    /// The byte offset just after it (after the closing quote of a quoted name).
    pub end: usize,
    /// Whether it was written in backticks or double quotes: then it is matched exactly,
    /// otherwise in any case.
    pub quoted: bool,
}

/// An expression as written.
#[derive(Debug, Clone, PartialEq)]
pub enum Ast {
    /// `*` in SELECT: every field of the event.
    Star(usize),
    /// A column, maybe qualified by the source's name or alias.
    Column {
        /// `o` in `o.customer_id`.
        qualifier: Option<Ident>,
        /// The column.
        name: Ident,
    },
    /// A constant.
    Literal(Value, usize),
    /// A function call; `COUNT(*)` has `star`.
    Call {
        /// The function name.
        name: Ident,
        /// Whether the argument is `*`.
        star: bool,
        /// The arguments.
        args: Vec<Ast>,
    },
    /// `NOT e`
    Not(Box<Ast>, usize),
    /// `-e`
    Neg(Box<Ast>, usize),
    /// `e IS [NOT] NULL`
    IsNull(Box<Ast>, bool),
    /// `l op r`
    Binary(BinaryOp, Box<Ast>, Box<Ast>),
    /// `CASE WHEN condition THEN value ... [ELSE otherwise] END`
    Case {
        /// The branches.
        branches: Vec<(Ast, Ast)>,
        /// ELSE.
        otherwise: Option<Box<Ast>>,
        /// Where `CASE` is written.
        at: usize,
    },
    /// `CAST(expr AS to)`
    Cast {
        /// The value.
        expr: Box<Ast>,
        /// The type's name as written.
        to: Ident,
        /// Where `CAST` is written.
        at: usize,
    },
}

impl Ast {
    /// Where the expression starts.
    pub fn at(&self) -> usize {
        match self {
            Ast::Column { qualifier: Some(q), .. } => q.at,
            Ast::Column { name, .. } | Ast::Call { name, .. } => name.at,
            Ast::Literal(_, at) | Ast::Not(_, at) | Ast::Neg(_, at) | Ast::Star(at) => *at,
            Ast::Case { at, .. } | Ast::Cast { at, .. } => *at,
            Ast::IsNull(e, _) | Ast::Binary(_, e, _) => e.at(),
        }
    }

    /// How many operators deep its tree is (a column or a constant: none).
    fn depth(&self) -> usize {
        let deepest = |children: &mut dyn Iterator<Item = &Ast>| children.map(Ast::depth).max().unwrap_or(0);
        match self {
            Ast::Star(_) | Ast::Column { .. } | Ast::Literal(..) => 0,
            Ast::Not(e, _) | Ast::Neg(e, _) | Ast::IsNull(e, _) | Ast::Cast { expr: e, .. } => 1 + e.depth(),
            Ast::Binary(_, l, r) => 1 + l.depth().max(r.depth()),
            Ast::Call { args, .. } => 1 + deepest(&mut args.iter()),
            Ast::Case { branches, otherwise, .. } => {
                1 + deepest(&mut branches.iter().flat_map(|(when, then)| [when, then]).chain(otherwise.as_deref()))
            }
        }
    }
}

/// One SELECT item.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectItem {
    /// The expression.
    pub expr: Ast,
    /// `AS alias`.
    pub alias: Option<Ident>,
}

/// The WINDOW clause.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowClause {
    /// `TUMBLING`, `HOPPING` or `SESSION`, where written.
    pub kind: Ident,
    /// SIZE, or the session gap.
    pub size: TimeSpan,
    /// ADVANCE BY.
    pub advance: Option<TimeSpan>,
    /// GRACE PERIOD.
    pub grace: Option<TimeSpan>,
}

/// A duration as written (`10 MINUTES`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeSpan {
    /// The duration; [`Duration::MAX`] when even that is shorter than written.
    pub duration: Duration,
    /// The byte offset of its number.
    pub at: usize,
}

/// One property of the `WITH` clause (`KAFKA_TOPIC = 'suspicious-sales'`).
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    /// Its name.
    pub name: Ident,
    /// Its value: a string or a number.
    pub value: Value,
    /// The byte offset of the value.
    pub at: usize,
}

/// A parsed `CREATE STREAM | TABLE ... AS SELECT`.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// STREAM or TABLE.
    pub output: OutputKind,
    /// The query's name.
    pub name: Ident,
    /// The properties of the `WITH` clause, as written.
    pub properties: Vec<Property>,
    /// The SELECT list.
    pub select: Vec<SelectItem>,
    /// FROM.
    pub from: Ident,
    /// The source's alias.
    pub alias: Option<Ident>,
    /// WINDOW.
    pub window: Option<WindowClause>,
    /// WHERE.
    pub filter: Option<Ast>,
    /// GROUP BY.
    pub group_by: Vec<Ast>,
    /// PARTITION BY.
    pub partition_by: Vec<Ast>,
    /// HAVING.
    pub having: Option<Ast>,
    /// EMIT, when written.
    pub emit: Option<Emit>,
    /// Where its CHANGES or FINAL is written (the end of the query when it is not).
    pub emit_at: usize,
    /// Where the query text ends (for errors about a missing clause).
    pub end: usize,
}

/// Words that cannot be names, so that an alias without AS is told from the next clause.
const RESERVED: &[&str] = &[
    "SELECT", "FROM", "WHERE", "GROUP", "BY", "HAVING", "WINDOW", "EMIT", "AS", "AND", "OR", "NOT", "IS", "NULL",
    "TRUE", "FALSE", "CREATE", "STREAM", "TABLE", "CHANGES", "FINAL", "CASE", "WHEN", "THEN", "ELSE", "END", "CAST",
    "IN", "LIKE", "BETWEEN",
];

/// Words that may name a column but not stand as an alias without AS, so that `FROM s
/// PARTITION BY` is the clause (ksqlDB's non-reserved `PARTITION`).
const NOT_BARE_ALIASES: &[&str] = &["PARTITION"];

/// How deeply expressions may nest (brackets, calls, CASE, CAST, NOT, minus signs): the parser
/// recurses once per level, with large frames in a debug build, so that a deeper query would
/// overflow the stack, which aborts the process, instead of being refused.
const MAX_NESTING: usize = 32;

/// How deep an expression's tree may be: the planner and the evaluation recurse through it, and
/// a chain such as `a + b + ...` is as deep as it is long.
const MAX_DEPTH: usize = 256;

thread_local! {
    /// How deeply the expression being parsed on this thread nests here.
    static NESTING: Cell<usize> = const { Cell::new(0) };
}

/// A parse error: where, what was expected, and what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseFailure {
    /// Byte offset.
    pub at: usize,
    /// What would have been accepted there.
    pub expected: String,
    /// What is there.
    pub found: String,
}

/// Parses one statement.
pub fn parse(sql: &str) -> Result<Statement, ParseFailure> {
    NESTING.set(0);
    statement.parse(LocatingSlice::new(sql)).map_err(|error| {
        let at = error.offset();
        ParseFailure { at, expected: expected(error.inner()), found: found(sql.get(at..).unwrap_or_default()) }
    })
}

const UNCLOSED_COMMENT: &str = "a comment closed with `*/`";
const UNCLOSED_STRING: &str = "a string closed with `'`";

fn expected(error: &ContextError) -> String {
    let mut wanted: Vec<String> = Vec::new();
    // Outermost first: an alternative names every choice there, its last choice names itself.
    let contexts: Vec<&StrContext> = error.context().collect();
    // Unclosed text is the whole story: not the keyword or value it was read in place of.
    for context in &contexts {
        if let StrContext::Expected(StrContextValue::Description(unclosed @ (UNCLOSED_COMMENT | UNCLOSED_STRING))) =
            context
        {
            return (*unclosed).to_owned();
        }
    }
    for context in contexts.into_iter().rev() {
        let text = match context {
            StrContext::Expected(StrContextValue::StringLiteral(s)) => format!("`{s}`"),
            StrContext::Expected(StrContextValue::CharLiteral(c)) => format!("`{c}`"),
            StrContext::Expected(StrContextValue::Description(d)) => (*d).to_owned(),
            StrContext::Label(label) => format!("a valid {label}"),
            _ => continue,
        };
        if !wanted.contains(&text) {
            wanted.push(text);
        }
    }
    match wanted.len() {
        0 => "something else".to_owned(),
        1 => wanted.remove(0),
        _ => {
            let last = wanted.pop().unwrap_or_default();
            format!("{} or {last}", wanted.join(", "))
        }
    }
}

fn found(rest: &str) -> String {
    let rest = rest.trim_start();
    match rest.chars().next() {
        None => "the end of the query".to_owned(),
        Some(c) if c.is_alphanumeric() || c == '_' => {
            let word: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            format!("`{word}`")
        }
        Some('\'') => match string_length(rest) {
            Some(length) => format!("`{}`", &rest[..length]),
            None => "`'`".to_owned(),
        },
        Some(c) => format!("`{c}`"),
    }
}

/// The length of the string literal `text` starts with, quotes included (`''` is a quote
/// inside it); `None` when it is not closed.
fn string_length(text: &str) -> Option<usize> {
    let mut end = 1;
    loop {
        end += text.get(end..)?.find('\'')? + 1;
        match text[end..].starts_with('\'') {
            true => end += 1,
            false => return Some(end),
        }
    }
}

fn expect(what: &'static str) -> StrContext {
    StrContext::Expected(StrContextValue::Description(what))
}

fn word_of(what: &'static str) -> StrContext {
    StrContext::Expected(StrContextValue::StringLiteral(what))
}

/// Whitespace, `--` comments and `/* */` comments (as ksqlDB's grammar has them).
fn ws(i: &mut In<'_>) -> ModalResult<()> {
    repeat(0.., alt((multispace1.void(), ("--", take_till(0.., ['\n'])).void(), bracketed_comment))).parse_next(i)
}

fn bracketed_comment(i: &mut In<'_>) -> ModalResult<()> {
    let opening = i.checkpoint();
    "/*".parse_next(i)?;
    let closed: ModalResult<()> = (take_until(0.., "*/"), "*/").void().parse_next(i);
    if closed.is_err() {
        // Unterminated: said where it opens, not at the end of the query.
        i.reset(&opening);
        return cut_err(fail.context(expect(UNCLOSED_COMMENT))).parse_next(i);
    }
    Ok(())
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// A keyword, in any case, as a whole word. The whole word is read first: a word that only
/// starts with the keyword (`SELECTED`) fails where it starts, so errors quote all of it.
fn kw<'i>(word: &'static str) -> impl Parser<In<'i>, (), ErrMode<ContextError>> {
    preceded(ws, take_while(1.., is_ident_char).verify(move |written: &str| written.eq_ignore_ascii_case(word)))
        .void()
        .context(word_of(word))
}

/// A punctuation token.
fn punct<'i>(token: &'static str) -> impl Parser<In<'i>, (), ErrMode<ContextError>> {
    preceded(ws, literal(token)).void().context(word_of(token))
}

fn ident(i: &mut In<'_>) -> ModalResult<Ident> {
    ws.parse_next(i)?;
    let at = i.current_token_start();
    let quoted = alt((quoted_name('`'), quoted_name('"'))).map(|text| (text, true));
    let bare = (one_of(|c: char| c.is_ascii_alphabetic() || c == '_'), take_while(0.., is_ident_char))
        .take()
        .verify(|word: &str| !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(word)))
        .map(|text: &str| (text.to_owned(), false));
    let (text, quoted) = alt((quoted, bare)).context(expect("a name")).parse_next(i)?;
    Ok(Ident { text, at, end: i.current_token_start(), quoted })
}

/// A name in `quote`s, where a doubled quote stands for one (ksqlDB's backquoted and quoted
/// identifiers).
fn quoted_name<'i>(quote: char) -> impl Parser<In<'i>, String, ErrMode<ContextError>> {
    let doubled: &'static str = if quote == '`' { "``" } else { "\"\"" };
    let parts = separated(1.., take_till(0.., [quote]), doubled);
    delimited(quote, parts, quote)
        .map(move |parts: Vec<&str>| parts.join(&quote.to_string()))
        .verify(|text: &String| !text.is_empty())
}

/// What may follow each optional clause, in order: an error at the end of the query lists the
/// clauses still possible there instead of only "the end of the query".
/// (PARTITION BY re-keys a query without WINDOW and GROUP BY: it is not offered after them.)
const AFTER_CLAUSE: [&str; 7] = [
    "`WINDOW`, `WHERE`, `GROUP BY`, `PARTITION BY`, `HAVING`, `EMIT`, `;` or the end of the query",
    "`WHERE`, `GROUP BY`, `HAVING`, `EMIT`, `;` or the end of the query",
    "an operator, `GROUP BY`, `PARTITION BY`, `HAVING`, `EMIT`, `;` or the end of the query",
    "an operator, `,`, `HAVING`, `EMIT`, `;` or the end of the query",
    "an operator, `,`, `EMIT`, `;` or the end of the query",
    "an operator, `EMIT`, `;` or the end of the query",
    "`;` or the end of the query",
];

/// One or more `item`s separated by commas; after a comma an item must come.
fn list<'i, O>(item: fn(&mut In<'i>) -> ModalResult<O>) -> impl Parser<In<'i>, Vec<O>, ErrMode<ContextError>> {
    (item, repeat(0.., preceded(punct(","), cut_err(item)))).map(|(first, rest): (O, Vec<O>)| {
        let mut items = vec![first];
        items.extend(rest);
        items
    })
}

fn statement(i: &mut In<'_>) -> ModalResult<Statement> {
    kw("CREATE").parse_next(i)?;
    let output = cut_err(
        alt((kw("STREAM").value(OutputKind::Stream), kw("TABLE").value(OutputKind::Table))).context(word_of("STREAM")),
    )
    .parse_next(i)?;
    let name = cut_err(ident).parse_next(i)?;
    let properties = opt(preceded(kw("WITH"), cut_err(properties))).parse_next(i)?.unwrap_or_default();
    cut_err(kw("AS")).parse_next(i)?;
    cut_err(kw("SELECT")).parse_next(i)?;
    let select = cut_err(list(select_item)).parse_next(i)?;
    cut_err(kw("FROM")).parse_next(i)?;
    let from = cut_err(ident).parse_next(i)?;
    let alias = alias.parse_next(i)?;
    let window = opt(preceded(kw("WINDOW"), cut_err(window))).parse_next(i)?;
    let filter = opt(preceded(kw("WHERE"), cut_err(expr))).parse_next(i)?;
    let group_by = opt(preceded((kw("GROUP"), cut_err(kw("BY"))), cut_err(list(expr))))
        .parse_next(i)?
        .unwrap_or_default();
    let partition_by = opt(preceded((kw("PARTITION"), cut_err(kw("BY"))), cut_err(list(expr))))
        .parse_next(i)?
        .unwrap_or_default();
    let having = opt(preceded(kw("HAVING"), cut_err(expr))).parse_next(i)?;
    let emit = opt(preceded(
        kw("EMIT"),
        cut_err(preceded(
            ws,
            alt((kw("CHANGES").value(Emit::Changes), kw("FINAL").value(Emit::Final)))
                .context(word_of("CHANGES"))
                .with_span(),
        )),
    ))
    .parse_next(i)?;
    let (emit, emit_at) = emit.map_or((None, None), |(emit, span)| (Some(emit), Some(span.start)));
    let closed = opt(punct(";")).parse_next(i)?.is_some();
    ws.parse_next(i)?;
    let end = i.current_token_start();
    let present = [
        true,
        window.is_some(),
        filter.is_some(),
        !group_by.is_empty(),
        !partition_by.is_empty(),
        having.is_some(),
        emit.is_some(),
    ];
    let last = present.iter().rposition(|present| *present).unwrap_or_default();
    // After the `;`: a second statement is the likely cause (ksqlDB's files hold several).
    let rest = if closed { "the end of the query (one statement at a time)" } else { AFTER_CLAUSE[last] };
    cut_err(eof.context(expect(rest))).parse_next(i)?;
    let emit_at = emit_at.unwrap_or(end);
    Ok(Statement {
        output,
        name,
        properties,
        select,
        from,
        alias,
        window,
        filter,
        group_by,
        partition_by,
        having,
        emit,
        emit_at,
        end,
    })
}

/// `(name = literal, ...)`: what each property means is the planner's to say.
fn properties(i: &mut In<'_>) -> ModalResult<Vec<Property>> {
    punct("(").parse_next(i)?;
    let properties = list(property).parse_next(i)?;
    punct(")").parse_next(i)?;
    Ok(properties)
}

fn property(i: &mut In<'_>) -> ModalResult<Property> {
    let name = ident(i)?;
    cut_err(punct("=")).parse_next(i)?;
    ws.parse_next(i)?;
    let at = i.current_token_start();
    let value =
        cut_err(alt((string.map(Value::Text), number)).context(expect("a string or a number"))).parse_next(i)?;
    Ok(Property { name, value, at })
}

fn select_item(i: &mut In<'_>) -> ModalResult<SelectItem> {
    ws.parse_next(i)?;
    let at = i.current_token_start();
    if opt(literal("*")).parse_next(i)?.is_some() {
        return Ok(SelectItem { expr: Ast::Star(at), alias: None });
    }
    let expr = expr.parse_next(i)?;
    let alias = alias.parse_next(i)?;
    Ok(SelectItem { expr, alias })
}

/// `AS name` or just `name` (ksqlDB's `(AS? identifier)?`); a keyword is never an alias, so the
/// next clause is not taken for one.
fn alias(i: &mut In<'_>) -> ModalResult<Option<Ident>> {
    let bare = ident.verify(|name: &Ident| {
        name.quoted || !NOT_BARE_ALIASES.iter().any(|word| word.eq_ignore_ascii_case(&name.text))
    });
    opt(alt((preceded(kw("AS"), cut_err(ident)), bare))).parse_next(i)
}

fn window(i: &mut In<'_>) -> ModalResult<WindowClause> {
    ws.parse_next(i)?;
    let at = i.current_token_start();
    let kind = alt((kw("TUMBLING").value("TUMBLING"), kw("HOPPING").value("HOPPING"), kw("SESSION").value("SESSION")))
        .context(word_of("HOPPING"))
        .context(word_of("TUMBLING"))
        .parse_next(i)?;
    let kind = Ident { text: kind.to_owned(), at, end: i.current_token_start(), quoted: false };
    punct("(").parse_next(i)?;
    let (size, advance) = match kind.text.as_str() {
        "SESSION" => (duration.parse_next(i)?, None),
        "HOPPING" => {
            let size = preceded(kw("SIZE"), duration).parse_next(i)?;
            let advance = preceded((punct(","), kw("ADVANCE"), kw("BY")), duration).parse_next(i)?;
            (size, Some(advance))
        }
        _ => (preceded(kw("SIZE"), duration).parse_next(i)?, None),
    };
    // After a comma only the grace period can come: say so when it is misspelt.
    let grace = opt(preceded(punct(","), cut_err(preceded((kw("GRACE"), kw("PERIOD")), duration)))).parse_next(i)?;
    punct(")").parse_next(i)?;
    Ok(WindowClause { kind, size, advance, grace })
}

fn duration(i: &mut In<'_>) -> ModalResult<TimeSpan> {
    ws.parse_next(i)?;
    let at = i.current_token_start();
    // A number beyond u64 is as much too large as one beyond i64 milliseconds: see below.
    let amount: Option<u64> =
        digit1.map(|digits: &str| digits.parse().ok()).context(expect("a whole number")).parse_next(i)?;
    // Past the blanks first: an unknown unit is reported where its word starts.
    ws.parse_next(i)?;
    let unit = terminated(take_while(1.., |c: char| c.is_ascii_alphabetic()), not(one_of(is_ident_char)))
        .verify_map(|unit: &str| {
            let singular = unit.strip_suffix(['s', 'S']).unwrap_or(unit).to_ascii_uppercase();
            Some(match singular.as_str() {
                "MILLISECOND" => 1u32,
                "SECOND" => 1_000,
                "MINUTE" => 60_000,
                "HOUR" => 3_600_000,
                "DAY" => 86_400_000,
                _ => return None,
            })
        })
        .context(expect("a time unit (MILLISECOND, SECOND, MINUTE, HOUR or DAY, singular or plural)"))
        .parse_next(i)?;
    // Too large for event times is the planner's to say, with the clause it is in.
    let duration = amount.and_then(|amount| Duration::from_millis(amount).checked_mul(unit)).unwrap_or(Duration::MAX);
    Ok(TimeSpan { duration, at })
}

fn expr(i: &mut In<'_>) -> ModalResult<Ast> {
    nested(i, |i| binary_level(i, &[("OR", BinaryOp::Or)], and_expr))
}

/// `parse`, one level of nesting deeper: refused past [`MAX_NESTING`], where it starts.
fn nested(i: &mut In<'_>, parse: impl FnOnce(&mut In<'_>) -> ModalResult<Ast>) -> ModalResult<Ast> {
    // The outermost expression is level 1: MAX_NESTING levels may nest inside it.
    let level = NESTING.get() + 1;
    if level > MAX_NESTING + 1 {
        ws.parse_next(i)?;
        return cut_err(fail.context(expect(TOO_NESTED))).parse_next(i);
    }
    NESTING.set(level);
    let parsed = parse(i);
    NESTING.set(level - 1);
    parsed
}

const TOO_NESTED: &str = "at most 32 brackets, function calls, CASE, CAST, NOT or minus signs inside one another";

const TOO_DEEP: &str = "an expression at most 256 operators deep (bracket parts of a long chain such as `a + b + ...`)";

fn and_expr(i: &mut In<'_>) -> ModalResult<Ast> {
    binary_level(i, &[("AND", BinaryOp::And)], not_expr)
}

fn not_expr(i: &mut In<'_>) -> ModalResult<Ast> {
    ws.parse_next(i)?;
    let at = i.current_token_start();
    match opt(kw("NOT")).parse_next(i)? {
        Some(()) => Ok(Ast::Not(Box::new(nested(i, |i| cut_err(not_expr).parse_next(i))?), at)),
        None => comparison(i),
    }
}

fn comparison(i: &mut In<'_>) -> ModalResult<Ast> {
    let left = additive(i)?;
    if opt(kw("IS")).parse_next(i)?.is_some() {
        let negated = opt(kw("NOT")).parse_next(i)?.is_some();
        let distinct = cut_err(alt((kw("NULL").value(false), kw("DISTINCT").value(true))))
            .context(word_of("DISTINCT"))
            .context(word_of("NULL"))
            .parse_next(i)?;
        if !distinct {
            return Ok(Ast::IsNull(Box::new(left), negated));
        }
        cut_err(kw("FROM")).parse_next(i)?;
        let at = left.at();
        let distinct =
            Ast::Binary(BinaryOp::IsDistinctFrom, Box::new(left), Box::new(cut_err(additive).parse_next(i)?));
        return Ok(match negated {
            true => Ast::Not(Box::new(distinct), at),
            false => distinct,
        });
    }
    let negated = opt(kw("NOT")).parse_next(i)?.is_some();
    let predicate = match negated {
        true => cut_err(predicate(left.clone()).map(Some)).parse_next(i)?,
        false => opt(predicate(left.clone())).parse_next(i)?,
    };
    if let Some(predicate) = predicate {
        return Ok(match negated {
            true => Ast::Not(Box::new(predicate), left.at()),
            false => predicate,
        });
    }
    let op = opt(preceded(
        ws,
        alt((
            "<=".value(BinaryOp::LtEq),
            ">=".value(BinaryOp::GtEq),
            "<>".value(BinaryOp::NotEq),
            "!=".value(BinaryOp::NotEq),
            "=".value(BinaryOp::Eq),
            "<".value(BinaryOp::Lt),
            ">".value(BinaryOp::Gt),
        )),
    ))
    .parse_next(i)?;
    match op {
        Some(op) => Ok(Ast::Binary(op, Box::new(left), Box::new(cut_err(additive).parse_next(i)?))),
        None => Ok(left),
    }
}

/// `BETWEEN a AND b`, `IN (a, ...)` or `LIKE pattern` after `left`, read as the comparisons
/// they stand for.
fn predicate<'i>(left: Ast) -> impl Parser<In<'i>, Ast, ErrMode<ContextError>> {
    move |i: &mut In<'i>| {
        let binary = |op, l: &Ast, r| Ast::Binary(op, Box::new(l.clone()), Box::new(r));
        let keyword = alt((kw("BETWEEN").value("BETWEEN"), kw("IN").value("IN"), kw("LIKE").value("LIKE")))
            .context(word_of("LIKE"))
            .context(word_of("IN"))
            .context(word_of("BETWEEN"))
            .parse_next(i)?;
        Ok(match keyword {
            "BETWEEN" => {
                let low = cut_err(additive).parse_next(i)?;
                cut_err(kw("AND")).parse_next(i)?;
                let high = cut_err(additive).parse_next(i)?;
                Ast::Binary(
                    BinaryOp::And,
                    Box::new(binary(BinaryOp::GtEq, &left, low)),
                    Box::new(binary(BinaryOp::LtEq, &left, high)),
                )
            }
            "IN" => {
                let values = cut_err(delimited(punct("("), list(expr), punct(")"))).parse_next(i)?;
                any_of(values.into_iter().map(|value| binary(BinaryOp::Eq, &left, value)).collect())
            }
            _ => {
                let pattern = cut_err(additive).parse_next(i)?;
                binary(BinaryOp::Like { escape: like_escape(i)? }, &left, pattern)
            }
        })
    }
}

/// `ESCAPE 'c'` after a LIKE pattern, if written: one character.
fn like_escape(i: &mut In<'_>) -> ModalResult<Option<char>> {
    const ONE_CHARACTER: &str = "one character in quotes, such as '!'";
    if opt(kw("ESCAPE")).parse_next(i)?.is_none() {
        return Ok(None);
    }
    ws.parse_next(i)?;
    let start = i.checkpoint();
    let text = cut_err(string.context(expect(ONE_CHARACTER))).parse_next(i)?;
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(escape), None) => Ok(Some(escape)),
        _ => {
            i.reset(&start);
            cut_err(fail.context(expect(ONE_CHARACTER))).parse_next(i)
        }
    }
}

/// `a OR b OR ...` as a balanced tree: a list of thousands nests a few levels deep, not
/// thousands (the planner and the evaluation recurse). `items` is not empty.
fn any_of(mut items: Vec<Ast>) -> Ast {
    if items.len() == 1 {
        return items.remove(0);
    }
    let right = items.split_off(items.len().div_ceil(2));
    Ast::Binary(BinaryOp::Or, Box::new(any_of(items)), Box::new(any_of(right)))
}

fn additive(i: &mut In<'_>) -> ModalResult<Ast> {
    symbol_level(i, &[("+", BinaryOp::Add), ("-", BinaryOp::Sub)], multiplicative)
}

fn multiplicative(i: &mut In<'_>) -> ModalResult<Ast> {
    symbol_level(i, &[("*", BinaryOp::Mul), ("/", BinaryOp::Div)], unary)
}

/// A left-associative chain of keyword operators.
fn binary_level(
    i: &mut In<'_>,
    ops: &[(&'static str, BinaryOp)],
    next: fn(&mut In<'_>) -> ModalResult<Ast>,
) -> ModalResult<Ast> {
    let mut left = next(i)?;
    let mut depth = None;
    'chain: loop {
        for (word, op) in ops {
            let operator = i.checkpoint();
            if opt(kw(word)).parse_next(i)?.is_some() {
                let right = cut_err(next).parse_next(i)?;
                deepen(i, &operator, &mut depth, &left, &right)?;
                left = Ast::Binary(*op, Box::new(left), Box::new(right));
                continue 'chain;
            }
        }
        return Ok(left);
    }
}

/// A left-associative chain of symbol operators.
fn symbol_level(
    i: &mut In<'_>,
    ops: &[(&'static str, BinaryOp)],
    next: fn(&mut In<'_>) -> ModalResult<Ast>,
) -> ModalResult<Ast> {
    let mut left = next(i)?;
    let mut depth = None;
    'chain: loop {
        for (symbol, op) in ops {
            let operator = i.checkpoint();
            if opt(preceded(ws, literal(*symbol))).parse_next(i)?.is_some() {
                let right = cut_err(next).parse_next(i)?;
                deepen(i, &operator, &mut depth, &left, &right)?;
                left = Ast::Binary(*op, Box::new(left), Box::new(right));
                continue 'chain;
            }
        }
        return Ok(left);
    }
}

/// Counts one more link of a chain whose tree is `depth` deep so far (`left`'s, unknown before
/// the first link): past [`MAX_DEPTH`], refused at the `operator`.
fn deepen<'i>(
    i: &mut In<'i>,
    operator: &<In<'i> as Stream>::Checkpoint,
    depth: &mut Option<usize>,
    left: &Ast,
    right: &Ast,
) -> ModalResult<()> {
    let deeper = depth.unwrap_or_else(|| left.depth()).max(right.depth()) + 1;
    *depth = Some(deeper);
    if deeper > MAX_DEPTH {
        i.reset(operator);
        ws.parse_next(i)?;
        return cut_err(fail.context(expect(TOO_DEEP))).parse_next(i);
    }
    Ok(())
}

fn unary(i: &mut In<'_>) -> ModalResult<Ast> {
    ws.parse_next(i)?;
    let at = i.current_token_start();
    match opt(literal("-")).parse_next(i)? {
        Some(_) => Ok(Ast::Neg(Box::new(nested(i, |i| cut_err(unary).parse_next(i))?), at)),
        None => primary(i),
    }
}

fn primary(i: &mut In<'_>) -> ModalResult<Ast> {
    ws.parse_next(i)?;
    let at = i.current_token_start();
    let start = i.checkpoint();
    alt((
        number.map(move |v| Ast::Literal(v, at)),
        string.map(move |s| Ast::Literal(Value::Text(s), at)),
        kw("TRUE").map(move |_| Ast::Literal(Value::Bool(true), at)),
        kw("FALSE").map(move |_| Ast::Literal(Value::Bool(false), at)),
        kw("NULL").map(move |_| Ast::Literal(Value::Null, at)),
        delimited(punct("("), cut_err(expr), cut_err(punct(")"))),
        case,
        cast,
        call_or_column,
    ))
    .parse_next(i)
    .map_err(|error| match error {
        // Nothing matched: "an expression" says it all (not what the last choice wanted).
        ErrMode::Backtrack(_) => {
            ErrMode::Backtrack(ContextError::new().add_context(i, &start, expect("an expression")))
        }
        // Inside one (an unterminated string, a call without `)`): what it wanted.
        error => error,
    })
}

/// ksqlDB's numbers: `1`, `1.5`, `1.`, `.5`, `1E3`, `2.5e-3`.
fn number(i: &mut In<'_>) -> ModalResult<Value> {
    let exponent = opt((one_of(['e', 'E']), opt(one_of(['+', '-'])), digit1));
    let mantissa = alt(((digit1, opt(('.', digit0))).void(), ('.', digit1).void()));
    let text = (mantissa, exponent).take().parse_next(i)?;
    match text.parse::<i64>() {
        Ok(int) => Ok(Value::Int(int)),
        Err(_) => text.parse::<f64>().map(Value::Float).map_err(|_| ErrMode::Backtrack(ContextError::new())),
    }
}

fn string(i: &mut In<'_>) -> ModalResult<String> {
    let opening = i.checkpoint();
    '\''.parse_next(i)?;
    let closed: ModalResult<Vec<&str>> = terminated(separated(1.., take_till(0.., ['\'']), "''"), '\'').parse_next(i);
    match closed {
        Ok(parts) => Ok(parts.join("'")),
        // Unterminated: said where it opens, not at the end of the query.
        Err(_) => {
            i.reset(&opening);
            cut_err(fail.context(expect(UNCLOSED_STRING))).parse_next(i)
        }
    }
}

/// `CASE WHEN condition THEN value ... [ELSE otherwise] END` (ksqlDB's searched CASE).
fn case(i: &mut In<'_>) -> ModalResult<Ast> {
    ws.parse_next(i)?;
    let at = i.current_token_start();
    kw("CASE").parse_next(i)?;
    let branch = (preceded(kw("WHEN"), cut_err(expr)), preceded(cut_err(kw("THEN")), cut_err(expr)));
    let branches = cut_err(repeat(1.., branch)).parse_next(i)?;
    let otherwise = opt(preceded(kw("ELSE"), cut_err(expr))).parse_next(i)?;
    match otherwise {
        Some(_) => cut_err(kw("END")).parse_next(i)?,
        None => cut_err(kw("END").context(word_of("ELSE")).context(word_of("WHEN"))).parse_next(i)?,
    }
    Ok(Ast::Case { branches, otherwise: otherwise.map(Box::new), at })
}

/// `CAST(expr AS type)`: the type's name is the planner's to check.
fn cast(i: &mut In<'_>) -> ModalResult<Ast> {
    ws.parse_next(i)?;
    let at = i.current_token_start();
    kw("CAST").parse_next(i)?;
    let expr = cut_err(delimited(punct("("), expr, kw("AS"))).parse_next(i)?;
    let to = cut_err(ident.context(expect("a type (BIGINT, DOUBLE, STRING or BOOLEAN)"))).parse_next(i)?;
    cut_err(punct(")")).parse_next(i)?;
    Ok(Ast::Cast { expr: Box::new(expr), to, at })
}

fn call_or_column(i: &mut In<'_>) -> ModalResult<Ast> {
    let name = ident(i)?;
    if opt(punct("(")).parse_next(i)?.is_some() {
        if opt(punct("*")).parse_next(i)?.is_some() {
            cut_err(punct(")")).parse_next(i)?;
            return Ok(Ast::Call { name, star: true, args: Vec::new() });
        }
        let args: Vec<Ast> = separated(0.., expr, punct(",")).parse_next(i)?;
        cut_err(punct(")")).parse_next(i)?;
        return Ok(Ast::Call { name, star: false, args });
    }
    if opt(literal(".")).parse_next(i)?.is_some() {
        let column = cut_err(ident).parse_next(i)?;
        return Ok(Ast::Column { qualifier: Some(name), name: column });
    }
    Ok(Ast::Column { qualifier: None, name })
}
