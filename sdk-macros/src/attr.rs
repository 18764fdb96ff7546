//! The derives' own attributes (`#[event(...)]`, `#[reaction(...)]`, ...), parsed key by key, and
//! the keys of `#[serde(...)]` attributes, which the message derives check.

use proc_macro2::Span;
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Ident, LitInt, LitStr, Meta, Path, Token, Type, parenthesized};

/// `#[event(module = "payment", key = payment_id, version = 2, upcast = path::to::fn)]`, or
/// `#[command(...)]`.
#[derive(Default)]
pub struct MessageAttrs {
    pub module: Option<LitStr>,
    pub key: Option<Ident>,
    pub version: Option<u32>,
    pub upcast: Option<Path>,
    pub krate: Option<Path>,
}

/// `#[reaction(...)]` or `#[projection(...)]`; a projection accepts `module`, `name` and
/// `subscribe` only.
#[derive(Default)]
pub struct ProcessorAttrs {
    pub module: Option<LitStr>,
    pub name: Option<LitStr>,
    pub commands: Option<Type>,
    pub error: Option<Type>,
    pub start: Option<Start>,
    pub subscribe: Option<Subscribe>,
    pub krate: Option<Path>,
}

/// `start = beginning | end`.
#[derive(Clone, Copy)]
pub enum Start {
    Beginning,
    End,
}

/// `subscribe(PaymentEvent, OrderEvent)`.
pub struct Subscribe {
    /// The `subscribe` key, where an empty list is reported.
    pub span: Span,
    pub events: Vec<Path>,
}

/// `#[reference(prefix = "ord", crate = "...")]`.
#[derive(Default)]
pub struct ReferenceAttrs {
    pub prefix: Option<LitStr>,
    pub krate: Option<Path>,
}

/// The struct's `#[reference(...)]`.
pub fn reference(attrs: &[Attribute]) -> syn::Result<ReferenceAttrs> {
    let attrs = parse(attrs, "reference", &["prefix", "crate"], |attrs: &mut ReferenceAttrs, key, meta| {
        match key {
            "prefix" => attrs.prefix = Some(meta.value()?.parse()?),
            "crate" => attrs.krate = Some(crate_path(meta)?),
            _ => unreachable!("`parse` passes only the keys given"),
        }
        Ok(())
    })?;
    Ok(attrs.unwrap_or_default())
}

/// `crate = "path"`: where the user's crate reaches tramline, when not as `::tramline` (a facade
/// crate that re-exports it), as serde's `#[serde(crate = "...")]`.
fn crate_path(meta: ParseNestedMeta) -> syn::Result<Path> {
    let path: LitStr = meta.value()?.parse()?;
    path.parse()
        .map_err(|_| syn::Error::new(path.span(), "expected the path of the tramline crate (`my_sdk::tramline`)"))
}

/// The enum's `#[event(...)]` or `#[command(...)]` (`name`).
pub fn message(attrs: &[Attribute], name: &str) -> syn::Result<MessageAttrs> {
    let keys = ["module", "key", "version", "upcast", "crate"];
    let attrs = parse(attrs, name, &keys, |attrs: &mut MessageAttrs, key, meta| {
        match key {
            "module" => attrs.module = Some(meta.value()?.parse()?),
            "key" => attrs.key = Some(meta.value()?.parse()?),
            "version" => attrs.version = Some(version(meta)?),
            "upcast" => attrs.upcast = Some(meta.value()?.parse()?),
            "crate" => attrs.krate = Some(crate_path(meta)?),
            _ => unreachable!("`parse` passes only the keys given"),
        }
        Ok(())
    })?;
    Ok(attrs.unwrap_or_default())
}

/// A variant's `#[event(rename = "...", forgets)]` or `#[command(rename = "...")]` (`name`).
#[derive(Default)]
pub struct VariantAttrs {
    pub rename: Option<LitStr>,
    /// The `forgets` flag, where it was written.
    pub forgets: Option<Span>,
}

/// A variant's `#[event(...)]` or `#[command(...)]` (`name`).
pub fn variant(attrs: &[Attribute], name: &str) -> syn::Result<VariantAttrs> {
    let attrs = parse(attrs, name, &["rename", "forgets"], |attrs: &mut VariantAttrs, key, meta| {
        match key {
            "rename" => attrs.rename = Some(meta.value()?.parse()?),
            "forgets" => attrs.forgets = Some(meta.path.span()),
            _ => unreachable!("`parse` passes only the keys given"),
        }
        Ok(())
    })?;
    Ok(attrs.unwrap_or_default())
}

/// Whether a field is marked `#[pii]`. It takes no arguments: the data subject is the entity
/// the message is keyed by.
pub fn pii(attrs: &[Attribute]) -> syn::Result<bool> {
    let mut found = false;
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("pii")) {
        if !matches!(attr.meta, Meta::Path(_)) {
            let message = "`#[pii]` takes no arguments: the data subject of a message's personal data is the \
                           entity the message is keyed by";
            return Err(syn::Error::new_spanned(attr, message));
        }
        if found {
            return Err(syn::Error::new_spanned(attr, "`#[pii]` is given twice"));
        }
        found = true;
    }
    Ok(found)
}

/// `#[reaction(...)]` or `#[projection(...)]` (`name`), with the keys that one accepts.
pub fn processor(attrs: &[Attribute], name: &str, keys: &[&str]) -> syn::Result<ProcessorAttrs> {
    let attrs = parse(attrs, name, keys, |attrs: &mut ProcessorAttrs, key, meta| {
        match key {
            "module" => attrs.module = Some(meta.value()?.parse()?),
            "name" => attrs.name = Some(meta.value()?.parse()?),
            "commands" => attrs.commands = Some(meta.value()?.parse()?),
            "error" => attrs.error = Some(meta.value()?.parse()?),
            "start" => attrs.start = Some(start(meta)?),
            "subscribe" => attrs.subscribe = Some(subscribe(meta)?),
            "crate" => attrs.krate = Some(crate_path(meta)?),
            _ => unreachable!("`parse` passes only the keys given"),
        }
        Ok(())
    })?;
    Ok(attrs.unwrap_or_default())
}

/// The keys of the `#[serde(...)]` attributes (`rename` of `#[serde(rename = "x")]`). An
/// attribute serde cannot parse either is left for serde to report.
pub fn serde_keys(attrs: &[Attribute]) -> Vec<Path> {
    attrs
        .iter()
        .filter(|attr| attr.path().is_ident("serde"))
        .filter_map(|attr| attr.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated).ok())
        .flatten()
        .map(|meta| meta.path().clone())
        .collect()
}

/// Parses every `#[name(...)]` attribute into one `T`, calling `set` with each key of `keys`;
/// `None` when there is no such attribute. An unknown or repeated key is an error at the key.
fn parse<T: Default>(
    attrs: &[Attribute],
    name: &str,
    keys: &[&str],
    mut set: impl FnMut(&mut T, &str, ParseNestedMeta) -> syn::Result<()>,
) -> syn::Result<Option<T>> {
    let mut parsed = None;
    let mut seen = Vec::new();
    for attr in attrs.iter().filter(|attr| attr.path().is_ident(name)) {
        let value = parsed.get_or_insert_with(T::default);
        attr.parse_nested_meta(|meta| {
            let key = meta.path.get_ident().map(Ident::to_string).unwrap_or_default();
            if !keys.contains(&key.as_str()) {
                let accepted = keys.iter().map(|key| format!("`{key}`")).collect::<Vec<_>>();
                let path = meta.path.to_token_stream();
                return Err(meta.error(format!("unknown key `{path}`; #[{name}] accepts {}", accepted.join(", "))));
            }
            if seen.contains(&key) {
                return Err(meta.error(format!("`{key}` is given twice")));
            }
            set(value, &key, meta)?;
            seen.push(key);
            Ok(())
        })?;
    }
    Ok(parsed)
}

fn version(meta: ParseNestedMeta) -> syn::Result<u32> {
    let literal: LitInt = meta.value()?.parse()?;
    match literal.base10_parse()? {
        0 => Err(syn::Error::new(literal.span(), "schema versions start at 1")),
        version => Ok(version),
    }
}

fn start(meta: ParseNestedMeta) -> syn::Result<Start> {
    let start: Ident = meta.value()?.parse()?;
    match start.to_string().as_str() {
        "beginning" => Ok(Start::Beginning),
        "end" => Ok(Start::End),
        _ => Err(syn::Error::new(start.span(), "expected `start = beginning` or `start = end`")),
    }
}

fn subscribe(meta: ParseNestedMeta) -> syn::Result<Subscribe> {
    let content;
    parenthesized!(content in meta.input);
    let events = Punctuated::<Path, Token![,]>::parse_terminated(&content)?;
    Ok(Subscribe { span: meta.path.span(), events: events.into_iter().collect() })
}
