//! The input of each derive as plain types: the item of the right kind, with its required
//! attributes present. The rules about their values are checked by `valid`.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::{Data, DataEnum, DeriveInput, Error, Field, Fields, Generics, Ident, LitStr, Path, Type};

use crate::attr::{self, Start, Subscribe};

/// `#[derive(ReferenceId)]`: `pub struct PaymentId(Uuid);`.
pub struct ReferenceId {
    pub ident: Ident,
    pub generics: Generics,
    pub prefix: LitStr,
    /// `crate = "..."`: where the user's crate reaches tramline.
    pub krate: Option<Path>,
}

/// `#[derive(Event)]` or `#[derive(Command)]`: an enum of message types.
pub struct Message {
    pub kind: Kind,
    pub ident: Ident,
    pub generics: Generics,
    pub module: LitStr,
    pub key: Ident,
    pub version: Option<u32>,
    /// The function that turns an older version's payload into the current shape.
    pub upcast: Option<Path>,
    /// The keys of the enum's `#[serde(...)]` attributes.
    pub serde: Vec<Path>,
    pub variants: Vec<Variant>,
    pub krate: Option<Path>,
}

/// Which of the two message derives.
#[derive(Clone, Copy)]
pub enum Kind {
    Event,
    Command,
}

/// One message type.
pub struct Variant {
    pub ident: Ident,
    pub fields: Fields,
    pub rename: Option<LitStr>,
    /// `#[event(forgets)]`: the event forgets its entity as a data subject.
    pub forgets: Option<Span>,
    /// The fields marked `#[pii]`.
    pub pii: Vec<Field>,
    /// The keys of the variant's `#[serde(...)]` attributes.
    pub serde: Vec<Path>,
}

/// `#[derive(Reaction)]`.
pub struct Reaction {
    pub ident: Ident,
    pub generics: Generics,
    pub module: LitStr,
    pub name: Option<LitStr>,
    pub commands: Option<Type>,
    pub error: Option<Type>,
    pub start: Option<Start>,
    pub subscribe: Subscribe,
    pub krate: Option<Path>,
}

/// `#[derive(Projection)]`.
pub struct Projection {
    pub ident: Ident,
    pub generics: Generics,
    pub module: Option<LitStr>,
    pub name: Option<LitStr>,
    pub subscribe: Subscribe,
    pub krate: Option<Path>,
}

impl ReferenceId {
    pub fn from_syn(input: &DeriveInput) -> syn::Result<Self> {
        const SHAPE: &str = "a reference ID is a newtype over uuid::Uuid: `pub struct OrderId(Uuid);`";
        let field = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Unnamed(fields) if fields.unnamed.len() == 1 => &fields.unnamed[0],
                Fields::Unit => return Err(Error::new_spanned(&input.ident, SHAPE)),
                fields => return Err(Error::new_spanned(fields, SHAPE)),
            },
            _ => return Err(Error::new(keyword(&input.data), SHAPE)),
        };
        if !is_uuid(&field.ty) {
            return Err(Error::new_spanned(&field.ty, SHAPE));
        }
        let attrs = attr::reference(&input.attrs)?;
        let Some(prefix) = attrs.prefix else {
            let write = "`#[reference(prefix = \"ord\")]`, the prefix of the ID's text form (`ord_0193…`)";
            return Err(missing(input, "ReferenceId", "reference", &["prefix"], write));
        };
        Ok(ReferenceId { ident: input.ident.clone(), generics: input.generics.clone(), prefix, krate: attrs.krate })
    }
}

impl Message {
    pub fn from_syn(input: &DeriveInput, kind: Kind) -> syn::Result<Self> {
        let (derive, attr) = (kind.derive(), kind.attr());
        let Data::Enum(data) = &input.data else {
            let message = format!("derive({derive}) goes on the module's {attr} enum: one variant per {attr} type");
            return Err(Error::new(keyword(&input.data), message));
        };
        misplaced(input, data, attr)?;
        let attrs = attr::message(&input.attrs, attr)?;
        let absent = absent(&[("module", attrs.module.is_none()), ("key", attrs.key.is_none())]);
        let (Some(module), Some(key)) = (attrs.module, attrs.key) else {
            let write = format!(
                "`#[{attr}(module = \"payment\", key = payment_id)]`, naming the owning module and the field \
                 that holds each {attr}'s reference ID"
            );
            return Err(missing(input, derive, attr, &absent, &write));
        };
        let variants = data
            .variants
            .iter()
            .map(|variant| {
                let attrs = attr::variant(&variant.attrs, attr)?;
                let mut pii = Vec::new();
                for field in &variant.fields {
                    if attr::pii(&field.attrs)? {
                        pii.push(field.clone());
                    }
                }
                Ok(Variant {
                    ident: variant.ident.clone(),
                    fields: variant.fields.clone(),
                    rename: attrs.rename,
                    forgets: attrs.forgets,
                    pii,
                    serde: attr::serde_keys(&variant.attrs),
                })
            })
            .collect::<syn::Result<_>>()?;
        Ok(Message {
            kind,
            ident: input.ident.clone(),
            generics: input.generics.clone(),
            module,
            key,
            version: attrs.version,
            upcast: attrs.upcast,
            serde: attr::serde_keys(&input.attrs),
            variants,
            krate: attrs.krate,
        })
    }

    /// The name of a variant's type on the log: its `rename`, else the variant and enum names
    /// combined (`PaymentEvent::Completed` is `PaymentCompleted`, `PaymentCommand::Create` is
    /// `CreatePayment`).
    pub fn type_name(&self, variant: &Variant) -> String {
        if let Some(rename) = &variant.rename {
            return rename.value();
        }
        let (name, variant) = (self.ident.unraw().to_string(), variant.ident.unraw().to_string());
        match self.kind {
            Kind::Event => format!("{}{variant}", name.strip_suffix("Event").unwrap_or(&name)),
            Kind::Command => format!("{variant}{}", name.strip_suffix("Command").unwrap_or(&name)),
        }
    }
}

impl Kind {
    /// The derive's and the trait's name.
    pub fn derive(self) -> &'static str {
        match self {
            Kind::Event => "Event",
            Kind::Command => "Command",
        }
    }

    /// The attribute's name, also the word for one message.
    pub fn attr(self) -> &'static str {
        match self {
            Kind::Event => "event",
            Kind::Command => "command",
        }
    }
}

impl Message {
    /// Whether any field holds personal data.
    pub fn personal(&self) -> bool {
        self.variants.iter().any(|variant| !variant.pii.is_empty())
    }
}

impl Variant {
    /// The named field `name`, if the variant has it.
    pub fn field(&self, name: &Ident) -> Option<&Field> {
        let Fields::Named(fields) = &self.fields else {
            return None;
        };
        fields
            .named
            .iter()
            .find(|field| field.ident.as_ref().is_some_and(|ident| ident.unraw() == name.unraw()))
    }
}

impl Reaction {
    pub fn from_syn(input: &DeriveInput) -> syn::Result<Self> {
        if !matches!(input.data, Data::Struct(_)) {
            let message = "derive(Reaction) goes on a struct that holds what the reaction needs (clients, settings)";
            return Err(Error::new(keyword(&input.data), message));
        }
        let keys = ["module", "name", "commands", "error", "start", "subscribe", "crate"];
        let attrs = attr::processor(&input.attrs, "reaction", &keys)?;
        let absent = absent(&[("module", attrs.module.is_none()), ("subscribe", attrs.subscribe.is_none())]);
        let (Some(module), Some(subscribe)) = (attrs.module, attrs.subscribe) else {
            let write = "`#[reaction(module = \"order\", subscribe(PaymentEvent))]`, naming the module it \
                         belongs to and the event enums it reacts to";
            return Err(missing(input, "Reaction", "reaction", &absent, write));
        };
        Ok(Reaction {
            ident: input.ident.clone(),
            generics: input.generics.clone(),
            module,
            name: attrs.name,
            commands: attrs.commands,
            error: attrs.error,
            start: attrs.start,
            subscribe,
            krate: attrs.krate,
        })
    }
}

impl Projection {
    pub fn from_syn(input: &DeriveInput) -> syn::Result<Self> {
        if !matches!(input.data, Data::Struct(_)) {
            let message = "derive(Projection) goes on the struct of the read model";
            return Err(Error::new(keyword(&input.data), message));
        }
        let attrs = attr::processor(&input.attrs, "projection", &["module", "name", "subscribe", "crate"])?;
        let Some(subscribe) = attrs.subscribe else {
            let write = "`#[projection(subscribe(OrderEvent))]`, naming the event enums it folds";
            return Err(missing(input, "Projection", "projection", &["subscribe"], write));
        };
        Ok(Projection {
            ident: input.ident.clone(),
            generics: input.generics.clone(),
            module: attrs.module,
            name: attrs.name,
            subscribe,
            krate: attrs.krate,
        })
    }
}

/// `#[pii]` on the enum or a variant, and the derive's attribute on a field: the derive reads
/// neither there, so they would be ignored.
fn misplaced(input: &DeriveInput, data: &DataEnum, attr: &str) -> syn::Result<()> {
    let pii = "`#[pii]` goes on a field that holds personal data, not on the enum or a variant";
    let on_field = format!("`#[{attr}(...)]` goes on the enum or a variant, not on a field");
    let variant_attrs = data.variants.iter().flat_map(|variant| &variant.attrs);
    let on_enum_or_variant = input.attrs.iter().chain(variant_attrs).filter(|a| a.path().is_ident("pii"));
    let fields = data.variants.iter().flat_map(|variant| &variant.fields);
    let on_fields = fields.flat_map(|field| &field.attrs).filter(|a| a.path().is_ident(attr));
    let errors = on_enum_or_variant
        .map(|a| Error::new_spanned(a, pii))
        .chain(on_fields.map(|a| Error::new_spanned(a, &on_field)));
    let all = errors.reduce(|mut all, error| {
        all.combine(error);
        all
    });
    all.map_or(Ok(()), Err)
}

/// The `struct`, `enum` or `union` keyword, where an item of the wrong kind is reported.
fn keyword(data: &Data) -> Span {
    match data {
        Data::Struct(data) => data.struct_token.span,
        Data::Enum(data) => data.enum_token.span,
        Data::Union(data) => data.union_token.span,
    }
}

/// The required keys of `keys` (key, whether absent) that are absent.
fn absent<'k>(keys: &[(&'k str, bool)]) -> Vec<&'k str> {
    keys.iter().filter(|(_, absent)| *absent).map(|(key, _)| *key).collect()
}

/// Required keys that are absent, reported at the attribute or, without one, at the item's name,
/// with the attribute to `write`.
fn missing(input: &DeriveInput, derive: &str, attr: &str, absent: &[&str], write: &str) -> Error {
    match input.attrs.iter().find(|a| a.path().is_ident(attr)) {
        Some(attribute) => {
            let absent = absent.iter().map(|key| format!("`{key}`")).collect::<Vec<_>>();
            let message = format!("`#[{attr}]` is missing {}: write {write}", absent.join(" and "));
            Error::new_spanned(attribute, message)
        }
        None => Error::new_spanned(&input.ident, format!("derive({derive}) needs {write}")),
    }
}

/// Whether the type is a path ending in `Uuid` (`Uuid`, `uuid::Uuid`).
fn is_uuid(ty: &Type) -> bool {
    matches!(ty, Type::Path(ty) if ty.qself.is_none() && ty.path.segments.last().is_some_and(|s| s.ident == "Uuid"))
}
