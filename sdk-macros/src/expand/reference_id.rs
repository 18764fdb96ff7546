use proc_macro2::TokenStream;
use quote::quote;
use syn::ext::IdentExt;

use crate::ast::ReferenceId;

/// `ReferenceId`, and the text form everywhere: `Display`, `Debug`, `FromStr`, serde (a string)
/// and JSON Schema (a string with the prefix's pattern).
pub fn reference_id(id: &ReferenceId) -> TokenStream {
    let ReferenceId { ident, prefix, .. } = id;
    let name = ident.unraw().to_string();
    let expecting = format!("an ID of type {name}: `{}_` followed by 32 lowercase hex digits", prefix.value());
    let serde = quote!(__tramline::__private::serde);
    let schemars = quote!(__tramline::__private::schemars);
    quote! {
        impl __tramline::ReferenceId for #ident {
            const PREFIX: &'static str = #prefix;
            const NAME: &'static str = #name;

            fn from_uuid(uuid: __tramline::__private::uuid::Uuid) -> Self {
                Self(uuid)
            }

            fn as_uuid(&self) -> &__tramline::__private::uuid::Uuid {
                &self.0
            }
        }

        impl ::core::fmt::Display for #ident {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                __tramline::__private::format_id(#prefix, &self.0, f)
            }
        }

        impl ::core::fmt::Debug for #ident {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Display::fmt(self, f)
            }
        }

        impl ::core::str::FromStr for #ident {
            type Err = __tramline::ParseIdError;

            fn from_str(s: &str) -> ::core::result::Result<Self, __tramline::ParseIdError> {
                __tramline::__private::parse_id(#name, #prefix, s).map(Self)
            }
        }

        // Here and below, the generic parameters and the local struct have names no user type
        // has: inside the function, a user type named `D`, `E` or `Visitor` would mean them.
        impl #serde::Serialize for #ident {
            fn serialize<__S>(&self, serializer: __S) -> ::core::result::Result<__S::Ok, __S::Error>
            where
                __S: #serde::Serializer,
            {
                serializer.collect_str(self)
            }
        }

        impl<'de> #serde::Deserialize<'de> for #ident {
            fn deserialize<__D>(deserializer: __D) -> ::core::result::Result<Self, __D::Error>
            where
                __D: #serde::Deserializer<'de>,
            {
                // A visitor borrows the text where the format allows, instead of allocating a String.
                struct __TramlineIdVisitor;

                impl #serde::de::Visitor<'_> for __TramlineIdVisitor {
                    type Value = #ident;

                    fn expecting(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                        f.write_str(#expecting)
                    }

                    fn visit_str<__E: #serde::de::Error>(self, text: &str) -> ::core::result::Result<Self::Value, __E> {
                        ::core::str::FromStr::from_str(text).map_err(__E::custom)
                    }
                }

                deserializer.deserialize_str(__TramlineIdVisitor)
            }
        }

        impl #schemars::JsonSchema for #ident {
            fn schema_name() -> ::std::borrow::Cow<'static, str> {
                ::std::borrow::Cow::Borrowed(#name)
            }

            // Qualified by the module, as schemars' own derive does, so that two IDs of the same
            // name in different modules are different schemas.
            fn schema_id() -> ::std::borrow::Cow<'static, str> {
                ::std::borrow::Cow::Borrowed(::core::concat!(::core::module_path!(), "::", #name))
            }

            fn json_schema(_: &mut #schemars::SchemaGenerator) -> #schemars::Schema {
                __tramline::__private::id_schema(#name, #prefix)
            }
        }
    }
}
