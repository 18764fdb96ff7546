//! The rules of each derive. Every broken rule is reported, each at the token that breaks it.

use std::fmt::Display;

use quote::ToTokens;
use syn::{Error, Fields, Generics, Ident, LitStr, Path};

use crate::ast::{Kind, Message, Projection, Reaction, ReferenceId};
use crate::attr::Subscribe;

pub fn reference_id(id: &ReferenceId) -> syn::Result<()> {
    let mut errors = Errors::default();
    errors.no_generics(&id.generics, "ReferenceId");
    let prefix = id.prefix.value();
    let valid = (1..=8).contains(&prefix.len())
        && prefix.starts_with(|c: char| c.is_ascii_lowercase())
        && prefix.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !valid {
        let message = "a prefix is 1 to 8 lowercase letters or digits, starting with a letter (`ord`, `pay`, `tk2`)";
        errors.at(&id.prefix, message);
    }
    errors.finish()
}

pub fn message(input: &Message) -> syn::Result<()> {
    let mut errors = Errors::default();
    errors.no_generics(&input.generics, input.kind.derive());
    errors.lowercase_name(&input.module, "a module name");
    if input.variants.is_empty() {
        let (name, attr) = (&input.ident, input.kind.attr());
        errors.at(name, format!("`{name}` has no variants: it needs one variant per {attr} type"));
    }
    errors.serde(input);
    errors.keys(input);
    errors.type_names(input);
    errors.personal_data(input);
    errors.finish()
}

pub fn reaction(reaction: &Reaction) -> syn::Result<()> {
    let mut errors = Errors::default();
    errors.no_generics(&reaction.generics, "Reaction");
    errors.lowercase_name(&reaction.module, "a module name");
    if let Some(name) = &reaction.name {
        errors.lowercase_name(name, "a reaction name");
    }
    errors.subscriptions(&reaction.subscribe);
    errors.finish()
}

pub fn projection(projection: &Projection) -> syn::Result<()> {
    let mut errors = Errors::default();
    errors.no_generics(&projection.generics, "Projection");
    if let Some(module) = &projection.module {
        errors.lowercase_name(module, "a module name");
    }
    if let Some(name) = &projection.name {
        errors.lowercase_name(name, "a projection name");
    }
    errors.subscriptions(&projection.subscribe);
    errors.finish()
}

/// Why a serde attribute does not fit the codec.
enum SerdeProblem {
    /// It names the variants otherwise than by their Rust names.
    Naming,
    /// It breaks writing or reading the variant's fields, for this reason.
    Breaks(&'static str),
}

/// What is wrong with a `#[serde(key)]` on the message enum, if anything.
fn serde_on_enum(key: &Path) -> Option<SerdeProblem> {
    let problem = match key.get_ident()?.to_string().as_str() {
        "rename_all" | "tag" | "content" | "untagged" => SerdeProblem::Naming,
        "from" | "try_from" | "into" => SerdeProblem::Breaks(
            "it (de)serialises the enum as another type, but the codec writes and reads the fields of the enum's \
             own variants; remove it, and put serde attributes on fields to change how they are written",
        ),
        "remote" => SerdeProblem::Breaks(
            "it derives serde for another type, but the codec (de)serialises this enum itself; remove it",
        ),
        _ => return None,
    };
    Some(problem)
}

/// What is wrong with a `#[serde(key)]` on a variant, if anything.
fn serde_on_variant(key: &Path) -> Option<SerdeProblem> {
    let problem = match key.get_ident()?.to_string().as_str() {
        "rename" => SerdeProblem::Naming,
        "skip" | "skip_serializing" => SerdeProblem::Breaks(
            "serde would refuse to write this variant, but every variant is written to the log; remove it",
        ),
        "skip_deserializing" => SerdeProblem::Breaks(
            "serde would refuse to read this variant, but every variant written to the log is read back; remove it",
        ),
        "untagged" => SerdeProblem::Breaks(
            "serde would write this variant without its name and read it by trying its fields, but the codec \
             finds a variant by the type name in the record's header; remove it",
        ),
        "with" | "serialize_with" | "deserialize_with" => SerdeProblem::Breaks(
            "it (de)serialises the variant as another shape, but the codec writes and reads the variant's own \
             fields as the record's payload; remove it, and put serde attributes on fields instead",
        ),
        "other" => SerdeProblem::Breaks(
            "a record of a type the enum does not know is reported as unknown, never read into a catch-all \
             variant; remove it",
        ),
        _ => return None,
    };
    Some(problem)
}

/// Whether a type name is ASCII letters, digits and `_`, starting with a letter (`CustomerMovedV2`).
fn is_type_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether a type names `Personal` anywhere (`Personal<String>`, `Option<Personal<String>>`).
fn mentions_personal(tokens: proc_macro2::TokenStream) -> bool {
    tokens.into_iter().any(|token| match token {
        proc_macro2::TokenTree::Ident(ident) => ident == "Personal",
        proc_macro2::TokenTree::Group(group) => mentions_personal(group.stream()),
        _ => false,
    })
}

fn same_tokens(a: &impl ToTokens, b: &impl ToTokens) -> bool {
    a.to_token_stream().to_string() == b.to_token_stream().to_string()
}

/// The errors found so far.
#[derive(Default)]
struct Errors(Option<Error>);

impl Errors {
    fn at(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(Error::new_spanned(tokens, message));
    }

    fn push(&mut self, error: Error) {
        match &mut self.0 {
            Some(errors) => errors.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }

    fn no_generics(&mut self, generics: &Generics, derive: &str) {
        if !generics.params.is_empty() {
            self.at(generics, format!("derive({derive}) does not support generic parameters"));
        }
    }

    /// serde must write each variant as its fields only and name it by its Rust name, as the
    /// codec expects: the type name travels in the `ce_type` header, from which the codec
    /// finds the variant.
    fn serde(&mut self, input: &Message) {
        let attr = input.kind.attr();
        let on_enum = input.serde.iter().map(|key| (key, serde_on_enum(key)));
        let on_variants =
            input.variants.iter().flat_map(|variant| &variant.serde).map(|key| (key, serde_on_variant(key)));
        for (key, problem) in on_enum.chain(on_variants) {
            let key_text = key.to_token_stream();
            match problem {
                Some(SerdeProblem::Naming) => {
                    let message = format!(
                        "`#[serde({key_text})]` does not apply to a tramline {attr}: the type name on the log comes \
                         from the variant name and travels in a header, the payload being the variant's fields; to \
                         choose the type name, write `#[{attr}(rename = \"...\")]` on the variant"
                    );
                    self.at(key, message);
                }
                Some(SerdeProblem::Breaks(why)) => {
                    let message = format!("`#[serde({key_text})]` does not apply to a tramline {attr}: {why}");
                    self.at(key, message);
                }
                None => {}
            }
        }
    }

    /// Every variant has named fields, among them the key. That the keys are of one type is left
    /// to the compiler (the expansion checks each at its field's type), which knows that
    /// `OrderId`, `ids::OrderId` and an alias of it are one type.
    fn keys(&mut self, input: &Message) {
        let (key, attr) = (&input.key, input.kind.attr());
        for variant in &input.variants {
            let ident = &variant.ident;
            match (&variant.fields, variant.field(key)) {
                (Fields::Named(_), Some(_)) => {}
                (Fields::Named(_), None) => {
                    self.at(ident, format!("variant `{ident}` has no field `{key}`, the key of every {attr}"));
                }
                (fields, _) => {
                    let message = format!(
                        "variant `{ident}` must have named fields, one of them the key: `{ident} {{ {key}: ..., ... }}`"
                    );
                    match fields {
                        Fields::Unit => self.at(ident, message),
                        _ => self.at(fields, message),
                    }
                }
            }
        }
    }

    /// Type names given by `rename` are identifier-like, and all are unique, each reported at its
    /// `rename` or else at its variant.
    fn type_names(&mut self, input: &Message) {
        let attr = input.kind.attr();
        let mut seen: Vec<(String, &Ident)> = Vec::new();
        for variant in &input.variants {
            let type_name = input.type_name(variant);
            let at = match &variant.rename {
                Some(rename) => rename.to_token_stream(),
                None => variant.ident.to_token_stream(),
            };
            if variant.rename.is_some() && !is_type_name(&type_name) {
                let message = format!(
                    "`{type_name}` is not a type name: write a letter, then letters, digits or `_` \
                     (`CustomerMovedV2`); the name goes into record headers, schema file names and stream queries"
                );
                self.at(at, message);
            } else if let Some((_, first)) = seen.iter().find(|(seen, _)| *seen == type_name) {
                let message = format!(
                    "variant `{first}` already has the type name `{type_name}`; \
                     give this one another with `#[{attr}(rename = \"...\")]`"
                );
                self.at(at, message);
            }
            seen.push((type_name, &variant.ident));
        }
    }

    /// A field whose type shows `Personal<_>` is marked `#[pii]`, and only events forget. A
    /// marked field need not show it: a struct of the user's or a type alias may hold personal
    /// data the derive cannot see, and the marker is how the user says so.
    fn personal_data(&mut self, input: &Message) {
        for variant in &input.variants {
            if let (Some(span), Kind::Command) = (variant.forgets, input.kind) {
                let message = "only an event forgets its subject: declare `#[event(forgets)]` on the event the \
                               command leads to (`Forgotten { .. }`)";
                self.push(Error::new(span, message));
            }
            for field in &variant.fields {
                let marked = variant.pii.iter().any(|pii| pii.ident == field.ident);
                if !marked && mentions_personal(field.ty.to_token_stream()) {
                    let name = field.ident.as_ref().map(ToString::to_string).unwrap_or_default();
                    let message = format!(
                        "field `{name}` holds personal data: mark it `#[pii]`, so that the contract shows what \
                         is erased when its subject is forgotten"
                    );
                    self.at(&field.ty, message);
                }
            }
        }
    }

    /// Module and processor names end up in topic and consumer group names.
    fn lowercase_name(&mut self, name: &LitStr, what: &str) {
        let value = name.value();
        let valid = value.starts_with(|c: char| c.is_ascii_lowercase())
            && value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            let message = format!("{what} is a lowercase letter, then lowercase letters, digits or `-` (`gift-card`)");
            self.at(name, message);
        }
    }

    fn subscriptions(&mut self, subscribe: &Subscribe) {
        if subscribe.events.is_empty() {
            let message = "`subscribe()` names no event enum: `subscribe(PaymentEvent, OrderEvent)`";
            self.push(Error::new(subscribe.span, message));
        }
        for (i, event) in subscribe.events.iter().enumerate() {
            if subscribe.events[..i].iter().any(|earlier| same_tokens(earlier, event)) {
                let event_name = event.to_token_stream();
                self.at(event, format!("`{event_name}` is subscribed to twice"));
            }
        }
    }
}
