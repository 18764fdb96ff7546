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
        Some(Start::Beginning) => quote!(__tramline::StartFrom::Beginning),
        Some(Start::End) | None => quote!(__tramline::StartFrom::End),
    };
    let command = reaction.commands.as_ref().map_or_else(|| quote!(__tramline::NoCommand), |ty| quote!(#ty));
    let error = reaction.error.as_ref().map_or_else(|| quote!(::std::convert::Infallible), |ty| quote!(#ty));
    // A reaction sends commands to its own module (`App::reaction` checks it too, for
    // reactions written by hand): said at compile time, at the commands' type.
    let own_commands = reaction.commands.as_ref().map(|ty| {
        let message = format!(
            "reaction `{name}` of module `{}` sends `{}`, commands of another module: a reaction issues commands to \
             its own module; give it that module's `module = ...`, or send these commands from a reaction of their module",
            module.value(),
            quote!(#ty).to_string().replace(' ', "")
        );
        quote_spanned! {ty.span()=>
            const _: () = ::core::assert!(
                __tramline::__private::str_eq(<#ty as __tramline::Message>::MODULE, #module),
                #message
            );
        }
    });
    let subscriptions = subscriptions(&reaction.subscribe);
    // Spanned at the event enum, so that a missing `React` impl is reported at `subscribe(...)`.
    let branches = reaction.subscribe.events.iter().map(|event| {
        quote_spanned! {event.span()=>
            if &*record.topic == __tramline::Subscription::of::<#event>().topic {
                return react::<Self, #event>(self, record).await;
            }
        }
    });
    quote! {
        #own_commands

        impl __tramline::Reaction for #ident {
            const NAME: &'static str = #name;
            const MODULE: &'static str = #module;
            const START: __tramline::StartFrom = #start;

            type Command = #command;
            type Error = #error;

            fn subscriptions() -> ::std::vec::Vec<__tramline::Subscription> {
                #subscriptions
            }

            fn dispatch(
                &self,
                record: &__tramline::log::Record,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<
                    ::std::vec::Vec<Self::Command>,
                    __tramline::DispatchError<Self::Error>,
                >,
            > + ::core::marker::Send {
                // Generic, so that a subscribed type that is not an event is reported by the
                // `Event` trait's message rather than by every use of `Message` items.
                async fn react<R: __tramline::React<E>, E: __tramline::Event>(
                    reaction: &R,
                    record: &__tramline::log::Record,
                ) -> ::core::result::Result<
                    ::std::vec::Vec<<R as __tramline::Reaction>::Command>,
                    __tramline::DispatchError<<R as __tramline::Reaction>::Error>,
                > {
                    let envelope = __tramline::codec::decode::<E>(record)?;
                    <R as __tramline::React<E>>::react(reaction, &envelope)
                        .await
                        .map_err(__tramline::DispatchError::Handler)
                }

                async move {
                    #(#branches)*
                    ::core::result::Result::Err(__tramline::DispatchError::Decode(
                        __tramline::codec::DecodeError::NotSubscribed {
                            position: __tramline::codec::position_of(record),
                            processor: #name,
                        },
                    ))
                }
            }
        }
    }
}
