//! Code generation, one file per derive. The generated code names everything by absolute path,
//! tramline as `__tramline` (see [`with_tramline`]), and adds nothing to the user's namespace
//! but impls.

mod message;
mod projection;
mod reaction;
mod reference_id;

use heck::ToKebabCase;
use proc_macro_crate::FoundCrate;
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Ident, LitStr, Path};

use crate::attr::Subscribe;

pub use message::message;
pub use projection::projection;
pub use reaction::reaction;
pub use reference_id::reference_id;

/// Puts a derive's impls in an anonymous constant where `__tramline` is the tramline crate: the
/// path `crate = "..."` gives (a facade crate's re-export), else the name the user's Cargo.toml
/// gives the dependency (renamed with `package = "tramline"`), else `::tramline` (within
/// tramline itself, which is `extern crate self as tramline`).
pub fn with_tramline(krate: Option<&Path>, impls: TokenStream) -> TokenStream {
    let path = match (krate, proc_macro_crate::crate_name("tramline")) {
        (Some(path), _) => quote!(#path),
        (None, Ok(FoundCrate::Name(name))) => {
            let name = Ident::new(&name, Span::call_site());
            quote!(::#name)
        }
        (None, Ok(FoundCrate::Itself) | Err(_)) => quote!(::tramline),
    };
    quote! {
        const _: () = {
            use #path as __tramline;
            #impls
        };
    }
}

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
        .map(|event| quote_spanned!(event.span()=> __tramline::Subscription::of::<#event>()));
    quote!(::std::vec![#(#subscriptions),*])
}
