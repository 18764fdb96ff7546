use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::{processor_name, subscriptions};
use crate::ast::Reaction;
use crate::attr::Start;

/// `Reaction`, whose `dispatch` decodes a record with the event enum of its topic and calls that
/// enum's `React` impl.
pub fn reaction(reaction: &Reaction) -> TokenStream {
    let Reaction { ident, module, .. } = reaction;
    let name = processor_name(reaction.name.as_ref(), ident);
    let start = match reaction.start {
        Some(Start::Beginning) => quote!(::tramline::StartFrom::Beginning),
        Some(Start::End) | None => quote!(::tramline::StartFrom::End),
    };
    let command = reaction.commands.as_ref().map_or_else(|| quote!(::tramline::NoCommand), |ty| quote!(#ty));
    let error = reaction.error.as_ref().map_or_else(|| quote!(::std::convert::Infallible), |ty| quote!(#ty));
    let subscriptions = subscriptions(&reaction.subscribe);
    // Spanned at the event enum, so that a missing `React` impl is reported at `subscribe(...)`.
    let branches = reaction.subscribe.events.iter().map(|event| {
        quote_spanned! {event.span()=>
            if &*record.topic == ::tramline::Subscription::of::<#event>().topic {
                return react::<Self, #event>(self, record).await;
            }
        }
    });
    quote! {
        impl ::tramline::Reaction for #ident {
            const NAME: &'static str = #name;
            const MODULE: &'static str = #module;
            const START: ::tramline::StartFrom = #start;

            type Command = #command;
            type Error = #error;

            fn subscriptions() -> ::std::vec::Vec<::tramline::Subscription> {
                #subscriptions
            }

            fn dispatch(
                &self,
                record: &::tramline::log::Record,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<
                    ::std::vec::Vec<Self::Command>,
                    ::tramline::DispatchError<Self::Error>,
                >,
            > + ::core::marker::Send {
                // Generic, so that a subscribed type that is not an event is reported by the
                // `Event` trait's message rather than by every use of `Message` items.
                async fn react<R: ::tramline::React<E>, E: ::tramline::Event>(
                    reaction: &R,
                    record: &::tramline::log::Record,
                ) -> ::core::result::Result<
                    ::std::vec::Vec<<R as ::tramline::Reaction>::Command>,
                    ::tramline::DispatchError<<R as ::tramline::Reaction>::Error>,
                > {
                    let envelope = ::tramline::codec::decode::<E>(record)?;
                    <R as ::tramline::React<E>>::react(reaction, &envelope)
                        .await
                        .map_err(::tramline::DispatchError::Handler)
                }

                async move {
                    #(#branches)*
                    ::core::result::Result::Err(::tramline::DispatchError::Decode(
                        ::tramline::codec::DecodeError::NotSubscribed {
                            position: ::tramline::codec::position_of(record),
                            processor: #name,
                        },
                    ))
                }
            }
        }
    }
}
