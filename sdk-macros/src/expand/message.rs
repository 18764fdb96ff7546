use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::Ident;
use syn::ext::IdentExt;
use syn::spanned::Spanned;

use crate::ast::Message;

/// `Message`, and the `Event` or `Command` marker.
pub fn message(input: &Message) -> TokenStream {
    let Message { ident, module, key, .. } = input;
    let name = ident.unraw().to_string();
    let topic = format!("{}.{}s", module.value(), input.kind.attr());
    let version = input.version.unwrap_or(1);
    let upcast = input.upcast.as_ref().map(|upcast| {
        // Hygienic parameters: the user's path (`upcast = version`) must not resolve to them.
        let [message_type, version, payload] =
            ["message_type", "version", "payload"].map(|name| Ident::new(name, Span::mixed_site()));
        quote! {
            fn upcast(
                #message_type: &str,
                #version: u32,
                #payload: __tramline::__private::serde_json::Value,
            ) -> ::core::result::Result<__tramline::__private::serde_json::Value, ::std::string::String> {
                #upcast(#message_type, #version, #payload)
            }
        }
    });
    let marker = format_ident!("{}", input.kind.derive());
    // Validated: every variant has the key, of one type.
    let key_ty = input.variants.iter().find_map(|variant| variant.field(key)).map(|field| &field.ty);
    let variants = input.variants.iter().map(|variant| &variant.ident).collect::<Vec<_>>();
    // Each variant's key as `Self::Key` (the first variant's key type), checked at the variant's
    // field type: a variant keyed by another type is reported there.
    let keys = input.variants.iter().map(|variant| {
        let span = variant.field(key).map_or_else(Span::call_site, |field| field.ty.span());
        let key_of_variant = Ident::new("__key", Span::mixed_site());
        quote_spanned!(span=> { let #key_of_variant: &Self::Key = #key; #key_of_variant })
    });
    let variant_names = input.variants.iter().map(|variant| variant.ident.unraw().to_string());
    let type_names = input.variants.iter().map(|variant| input.type_name(variant)).collect::<Vec<_>>();
    let personal = input.personal();
    // A `#[pii]` field must hold personal data (`Personal<T>`, or a type that implements
    // `HoldsPersonal`): checked by the compiler, at the field's type.
    let pii_types = input.variants.iter().flat_map(|variant| &variant.pii).map(|field| {
        let ty = &field.ty;
        quote_spanned!(ty.span()=> __tramline::__private::holds_personal::<#ty>();)
    });
    let pii_checks = quote! {
        #[allow(dead_code)]
        fn __tramline_pii_fields() {
            #(#pii_types)*
        }
    };
    let forgetting = input
        .variants
        .iter()
        .filter(|variant| variant.forgets.is_some())
        .map(|v| &v.ident)
        .collect::<Vec<_>>();
    let forgets = (!forgetting.is_empty()).then(|| {
        quote! {
            fn forgets(&self) -> bool {
                ::core::matches!(self, #(Self::#forgetting { .. })|*)
            }
        }
    });
    quote! {
        impl __tramline::Message for #ident {
            const MODULE: &'static str = #module;
            const TOPIC: &'static str = #topic;
            const NAME: &'static str = #name;
            const VERSION: u32 = #version;
            const PERSONAL: bool = #personal;
            const TYPES: &'static [__tramline::MessageType] = &[
                #(__tramline::MessageType { name: #type_names, variant: #variant_names },)*
            ];

            type Key = #key_ty;

            fn type_name(&self) -> &'static str {
                match self {
                    #(Self::#variants { .. } => #type_names,)*
                }
            }

            fn key(&self) -> &Self::Key {
                match self {
                    #(Self::#variants { #key, .. } => #keys,)*
                }
            }

            #upcast
            #forgets
        }

        impl __tramline::#marker for #ident {}

        #pii_checks
    }
}
