//! Code generation, one file per derive. The generated code names everything by absolute path
//! and adds nothing to the user's namespace but impls.

mod message;
mod projection;
mod reaction;
mod reference_id;

use heck::ToKebabCase;
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Ident, LitStr};

use crate::attr::Subscribe;

pub use message::message;
pub use projection::projection;
pub use reaction::reaction;
pub use reference_id::reference_id;

/// A processor's name: the one given, else the type's name in kebab case.
fn processor_name(name: Option<&LitStr>, ident: &Ident) -> String {
    name.map_or_else(|| ident.unraw().to_string().to_kebab_case(), LitStr::value)
}

/// The body of `subscriptions()`. Each event enum's tokens keep its span, so that a type that is
/// not an event is reported at the user's `subscribe(...)` with the `Event` trait's message.
fn subscriptions(subscribe: &Subscribe) -> TokenStream {
    let subscriptions = subscribe
        .events
        .iter()
        .map(|event| quote_spanned!(event.span()=> ::tramline::Subscription::of::<#event>()));
    quote!(::std::vec![#(#subscriptions),*])
}
