use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::LitStr;
use syn::spanned::Spanned;

use super::{processor_name, subscriptions};
use crate::ast::Projection;

/// `Projection`, whose `apply` decodes a record with the event enum of its topic and calls that
/// enum's `Handle` impl.
pub fn projection(projection: &Projection) -> TokenStream {
    let ident = &projection.ident;
    let name = processor_name(projection.name.as_ref(), ident);
    // A projection without a module is a function module of its own name.
    let module = projection.module.as_ref().map_or_else(|| name.clone(), LitStr::value);
    let subscriptions = subscriptions(&projection.subscribe);
    // Spanned at the event enum, so that a missing `Handle` impl is reported at `subscribe(...)`.
    let branches = projection.subscribe.events.iter().map(|event| {
        quote_spanned! {event.span()=>
            if &*record.topic == __tramline::Subscription::of::<#event>().topic {
                return handle::<Self, #event>(self, record);
            }
        }
    });
    quote! {
        impl __tramline::Projection for #ident {
            const NAME: &'static str = #name;
            const MODULE: &'static str = #module;

            fn subscriptions() -> ::std::vec::Vec<__tramline::Subscription> {
                #subscriptions
            }

            fn apply(
                &mut self,
                record: &__tramline::log::Record,
            ) -> ::core::result::Result<(), __tramline::codec::DecodeError> {
                // Generic, so that a subscribed type that is not an event is reported by the
                // `Event` trait's message rather than by every use of `Message` items.
                fn handle<P: __tramline::Handle<E>, E: __tramline::Event>(
                    projection: &mut P,
                    record: &__tramline::log::Record,
                ) -> ::core::result::Result<(), __tramline::codec::DecodeError> {
                    let envelope = __tramline::codec::decode::<E>(record)?;
                    <P as __tramline::Handle<E>>::handle(projection, &envelope);
                    ::core::result::Result::Ok(())
                }

                #(#branches)*
                ::core::result::Result::Err(__tramline::codec::DecodeError::NotSubscribed {
                    position: __tramline::codec::position_of(record),
                    processor: #name,
                })
            }
        }
    }
}
