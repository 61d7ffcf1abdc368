//! Code generation: the `App` impl (dispatch), the exports, the `client`
//! module and the embedded API description.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::LitByteStr;

use crate::describe;
use crate::model::{App, Handler, Param, Persist, Receiver, Ret, RoomPart};

const SDK: &str = "::hearth_sdk::rpc";

pub fn expand(app: &App) -> TokenStream {
    let item = &app.item;
    let ty = &app.ty;
    let rpc: TokenStream = SDK.parse().unwrap_or_default();
    let client = describe::client(app);
    let api = describe::api_json(app, &client);
    let api_bytes = {
        let mut bytes = b"HEARTH-API-V1\0".to_vec();
        bytes.extend_from_slice(api.as_bytes());
        bytes.extend_from_slice(b"\0HEARTH-API-END");
        bytes
    };
    let api_len = api_bytes.len();
    let api_lit = LitByteStr::new(&api_bytes, Span::call_site());

    let callable: Vec<&Handler> = app
        .handlers
        .iter()
        .filter(|h| h.kinds.local || h.kinds.remote || h.kinds.http.is_some())
        .collect();
    let args_structs = callable.iter().map(|h| args_struct(h));
    let arms = callable.iter().map(|h| call_arm(app, h));
    let methods: Vec<String> = app
        .handlers
        .iter()
        .filter(|h| h.kinds.local || h.kinds.remote)
        .map(|h| h.ident.to_string())
        .collect();
    let routes = app.handlers.iter().filter_map(|h| route(h, &rpc));
    let timers: Vec<&Handler> = app
        .handlers
        .iter()
        .filter(|h| h.kinds.timer.is_some())
        .collect();
    let timer_ms = timers.iter().filter_map(|h| h.kinds.timer);
    let timer_arms = timers.iter().enumerate().map(|(i, h)| {
        let call = invoke(app, h, &[]);
        quote!(#i => { #call })
    });
    let ws_arms = app
        .handlers
        .iter()
        .filter(|h| h.kinds.ws.is_some())
        .map(|h| {
            let name = h.ident.to_string();
            let call = invoke(app, h, &[quote!(__event)]);
            quote!(#name => { #call })
        });
    let init = match app.handlers.iter().find(|h| h.kinds.init) {
        Some(h) => invoke(app, h, &[]),
        None => quote!(#rpc::Outcome::Ready(::core::result::Result::Ok(b"null".to_vec()))),
    };
    let fallback = match app.handlers.iter().find(|h| h.kinds.fallback) {
        Some(h) => {
            let ident = &h.ident;
            let access = if h.receiver == Receiver::Mut {
                quote!(update)
            } else {
                quote!(with)
            };
            quote!(state.#access(|__s| <#ty>::#ident(__s, __msg)); ::core::result::Result::Ok(()))
        }
        None => quote!(::core::result::Result::Err(__msg)),
    };
    let persist = match app.persist {
        Persist::Always => quote!(#rpc::Persist::Always),
        Persist::OnChange => quote!(#rpc::Persist::OnChange),
        Persist::Never => quote!(#rpc::Persist::Never),
    };
    let (encode, decode) = if app.persist == Persist::Never {
        (
            quote!(::core::option::Option::None),
            quote!(::core::option::Option::None),
        )
    } else {
        let ty_span = ty.span();
        (
            quote_spanned!(ty_span=> #rpc::__private::persisted_encode::<#ty>(self)),
            quote_spanned!(ty_span=> #rpc::__private::persisted_decode::<#ty>(bytes)),
        )
    };

    quote! {
        #item

        const _: () = {
            #(#args_structs)*

            #[allow(unused_variables, unused_mut, clippy::let_unit_value)]
            impl #rpc::App for #ty {
                const API: &'static str = #api;
                const METHODS: &'static [&'static str] = &[#(#methods),*];
                const PERSIST: #rpc::Persist = #persist;
                const ROUTES: &'static [#rpc::Route] = &[#(#routes),*];
                const TIMERS: &'static [u64] = &[#(#timer_ms),*];

                fn encode(&self) -> ::core::option::Option<::core::result::Result<::std::vec::Vec<u8>, ::std::string::String>> {
                    #encode
                }
                fn decode(bytes: &[u8]) -> ::core::option::Option<::core::result::Result<Self, ::std::string::String>> {
                    #decode
                }
                fn init(state: &#rpc::State<Self>, mut ctx: #rpc::Ctx) -> #rpc::Outcome {
                    #init
                }
                fn call(
                    state: &#rpc::State<Self>,
                    mut ctx: #rpc::Ctx,
                    method: &str,
                    args: #rpc::__private::Args<'_>,
                ) -> #rpc::Outcome {
                    match method {
                        #(#arms)*
                        _ => #rpc::Outcome::UnknownMethod,
                    }
                }
                fn timer(state: &#rpc::State<Self>, index: usize) -> #rpc::Outcome {
                    let mut ctx = #rpc::Ctx::internal();
                    match index {
                        #(#timer_arms)*
                        _ => #rpc::Outcome::UnknownMethod,
                    }
                }
                fn ws(state: &#rpc::State<Self>, mut ctx: #rpc::Ctx, handler: &str, __event: #rpc::WsEvent) -> #rpc::Outcome {
                    match handler {
                        #(#ws_arms)*
                        _ => #rpc::Outcome::UnknownMethod,
                    }
                }
                fn fallback(state: &#rpc::State<Self>, __msg: ::hearth_sdk::Incoming) -> ::core::result::Result<(), ::hearth_sdk::Incoming> {
                    #fallback
                }
            }

            /// The API description, found by `kit b` in the built component.
            /// Not `#[used]`: on wasm, rustc writes a `link_section` static
            /// into its custom section whether it is used or not, and a used
            /// one stays in the data too, in every process's memory image.
            #[cfg(target_arch = "wasm32")]
            #[unsafe(link_section = "hearth-api")]
            static HEARTH_API: [u8; #api_len] = *#api_lit;
        };

        ::hearth_sdk::__export_app!(#ty);

        /// Typed client of this app, generated by `#[app]`: one async fn per
        /// `#[local]`/`#[remote]` method (and a `_within` variant taking a
        /// timeout). Compiled here so it is known to type-check; `kit b`
        /// writes it to the package's `api/<package>.rs` for other apps to
        /// `include!`.
        #[allow(dead_code)]
        pub mod client {
            #[allow(unused_imports)]
            use super::*;
            #client
        }
    }
}

fn args_struct(h: &Handler) -> TokenStream {
    let name = format_ident!("__HearthArgs_{}", h.ident);
    let fields = h
        .args
        .iter()
        .map(|(n, t)| quote_spanned!(t.span()=> #n: #t));
    quote! {
        #[derive(::hearth_sdk::rpc::__private::serde::Deserialize)]
        #[serde(crate = "hearth_sdk::rpc::__private::serde", deny_unknown_fields)]
        #[allow(non_camel_case_types)]
        struct #name { #(#fields),* }
    }
}

fn route(h: &Handler, rpc: &TokenStream) -> Option<TokenStream> {
    let handler = h.ident.to_string();
    let (kind, bind) = match (&h.kinds.http, &h.kinds.ws) {
        (Some(http), _) => {
            let m = &http.method;
            (quote!(#rpc::RouteKind::Http(#m)), &http.bind)
        }
        (None, Some(ws)) => (quote!(#rpc::RouteKind::Ws), ws),
        _ => return None,
    };
    let path = &bind.path;
    let access = match bind.access.as_str() {
        "public" => quote!(Public),
        "local-only" => quote!(LocalOnly),
        _ => quote!(Authenticated),
    };
    Some(quote! {
        #rpc::Route { kind: #kind, path: #path, access: ::hearth_sdk::http::Access::#access, handler: #handler }
    })
}

fn call_arm(app: &App, h: &Handler) -> TokenStream {
    let rpc: TokenStream = SDK.parse().unwrap_or_default();
    let name = h.ident.to_string();
    let (local, remote, http) = (h.kinds.local, h.kinds.remote, h.kinds.http.is_some());
    let allowed_text = [("local", local), ("remote", remote), ("http", http)]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(k, _)| *k)
        .collect::<Vec<_>>()
        .join(", ");
    let guards = app.guard.iter().chain(h.guard.iter()).map(|g| {
        quote_spanned! {g.span()=>
            if let ::core::result::Result::Err(e) = state.with(|__s| #g(__s, &mut ctx)) {
                return #rpc::Outcome::Ready(::core::result::Result::Err(::core::convert::Into::<#rpc::AppError>::into(e)));
            }
        }
    });
    let args_ty = format_ident!("__HearthArgs_{}", h.ident);
    let expected = describe::expected_args(h);
    let values: Vec<TokenStream> = h.args.iter().map(|(n, _)| quote!(__a.#n)).collect();
    let call = invoke(app, h, &values);
    let room = publish_room(h);
    quote! {
        #name => {
            let __allowed = match ctx.via() {
                #rpc::Via::Local => #local,
                #rpc::Via::Remote => #remote,
                #rpc::Via::Http => #http,
                #rpc::Via::Internal => false,
            };
            if !__allowed {
                return #rpc::Outcome::Ready(::core::result::Result::Err(#rpc::AppError::new(
                    #rpc::codes::NOT_ALLOWED,
                    ::std::format!("`{}` cannot be called {}; it is callable: {}", #name, ctx.via().as_str(), #allowed_text),
                )));
            }
            #(#guards)*
            let __a: #args_ty = match #rpc::__private::parse_args(args, #name, #expected) {
                ::core::result::Result::Ok(a) => a,
                ::core::result::Result::Err(e) => return #rpc::Outcome::Ready(::core::result::Result::Err(e)),
            };
            #room
            #call
        }
    }
}

/// `let __room = format!(..)` for a `#[publish]` handler, from its
/// arguments before the call takes them.
fn publish_room(h: &Handler) -> TokenStream {
    let Some(publish) = &h.kinds.publish else {
        return TokenStream::new();
    };
    let mut fmt = String::new();
    let mut values = Vec::new();
    for part in &publish.room {
        match part {
            RoomPart::Text(t) => fmt.push_str(&t.replace('{', "{{").replace('}', "}}")),
            RoomPart::Arg(name) => {
                fmt.push_str("{}");
                values.push(quote!(&__a.#name));
            }
        }
    }
    quote!(let __room: ::std::string::String = ::std::format!(#fmt #(, #values)*);)
}

/// The call of handler `h` with argument expressions `values` and its
/// conversion into an `Outcome`.
fn invoke(app: &App, h: &Handler, values: &[TokenStream]) -> TokenStream {
    let rpc: TokenStream = SDK.parse().unwrap_or_default();
    let ty = &app.ty;
    let ident = &h.ident;
    let params: Vec<TokenStream> = h
        .params
        .iter()
        .map(|p| match p {
            Param::Ctx if h.is_async => quote!(ctx),
            Param::Ctx => quote!(&ctx),
            Param::State => quote!(::core::clone::Clone::clone(state)),
            Param::Arg(i) => values.get(*i).cloned().unwrap_or_else(|| quote!(__event)),
        })
        .collect();
    let convert = convert_reply(h);
    if h.is_async {
        quote! {
            let __future = <#ty>::#ident(#(#params),*);
            #rpc::Outcome::Pending(::std::boxed::Box::pin(async move {
                let __r = __future.await;
                #convert
            }))
        }
    } else {
        let access = if h.receiver == Receiver::Mut {
            quote!(update)
        } else {
            quote!(with)
        };
        quote! {
            let __r = state.#access(|__s| <#ty>::#ident(__s, #(#params),*));
            #rpc::Outcome::Ready({ #convert })
        }
    }
}

/// `ok` (the encoded reply of `value`), and for a `#[publish]` handler
/// the publish of `value` once it encoded.
fn published(h: &Handler, ok: TokenStream, value: TokenStream) -> TokenStream {
    let rpc: TokenStream = SDK.parse().unwrap_or_default();
    let Some(p) = &h.kinds.publish else {
        return ok;
    };
    let (action, kind) = (&p.action, h.ident.to_string());
    quote! {{
        let __j = #ok;
        if __j.is_ok() {
            #rpc::__private::publish_resource(&__room, #action, #kind, &#value);
        }
        __j
    }}
}

fn convert_reply(h: &Handler) -> TokenStream {
    let rpc: TokenStream = SDK.parse().unwrap_or_default();
    match &h.ret {
        Ret::Unit => {
            let publish = h.kinds.publish.as_ref().map(|p| {
                let (action, kind) = (&p.action, h.ident.to_string());
                quote!(#rpc::__private::publish_resource(&__room, #action, #kind, &());)
            });
            quote!({
                let () = __r;
                #publish
                ::core::result::Result::Ok(b"null".to_vec())
            })
        }
        Ret::Plain(t) => {
            let ok = quote_spanned!(t.span()=> #rpc::__private::ok_json(&__r));
            published(h, ok, quote!(__r))
        }
        Ret::Result(t, e) => {
            let ok = quote_spanned!(t.span()=> #rpc::__private::ok_json(&__v));
            let ok = published(h, ok, quote!(__v));
            let err =
                quote_spanned!(e.span()=> <#rpc::AppError as ::core::convert::From<#e>>::from(__e));
            quote! {
                match __r {
                    ::core::result::Result::Ok(__v) => #ok,
                    ::core::result::Result::Err(__e) => {
                        // `E` may be `AppError` itself.
                        #[allow(clippy::useless_conversion)]
                        let __e = #err;
                        ::core::result::Result::Err(__e)
                    }
                }
            }
        }
    }
}
