//! The machine-readable API description and the typed client, both made
//! from the parsed handlers.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::Type;

use crate::model::{App, Handler, Persist, Ret};

/// A type as the user wrote it, with token spacing tidied:
/// `BTreeMap<String, Note>`.
pub fn type_text(ty: &Type) -> String {
    let raw = quote!(#ty).to_string();
    let mut out = String::with_capacity(raw.len());
    for part in raw.split(' ') {
        let glue = out.ends_with(['<', '&', ':', '(', '['])
            || part.starts_with(['<', '>', ',', ':', ')', ']', ';']);
        if !out.is_empty() && !glue {
            out.push(' ');
        }
        out.push_str(part);
    }
    out.replace(",", ", ")
        .replace(",  ", ", ")
        .replace("& '", "&'")
}

/// `{"key": String, "text": String}`, shown in wrong-shape errors.
pub fn expected_args(h: &Handler) -> String {
    let fields: Vec<String> = h
        .args
        .iter()
        .map(|(name, ty)| format!("\"{name}\": {}", type_text(ty)))
        .collect();
    format!("{{{}}}", fields.join(", "))
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn ret_texts(ret: &Ret) -> (String, String) {
    match ret {
        Ret::Unit => ("()".into(), "null".into()),
        Ret::Plain(t) => (type_text(t), "null".into()),
        Ret::Result(t, e) => (type_text(t), json_str(&type_text(e))),
    }
}

/// The API description as JSON text.
pub fn api_json(app: &App, client: &TokenStream) -> String {
    let ty = &app.ty;
    let mut methods = Vec::new();
    let mut ws = Vec::new();
    let mut timers = Vec::new();
    for h in &app.handlers {
        let name = json_str(&h.ident.to_string());
        if let Some(bind) = &h.kinds.ws {
            ws.push(format!(
                "{{\"name\":{name},\"path\":{},\"access\":{}}}",
                json_str(&bind.path),
                json_str(&bind.access)
            ));
            continue;
        }
        if let Some(ms) = h.kinds.timer {
            timers.push(format!("{{\"name\":{name},\"every_ms\":{ms}}}"));
            continue;
        }
        if !(h.kinds.local || h.kinds.remote || h.kinds.http.is_some()) {
            continue;
        }
        let args: Vec<String> = h
            .args
            .iter()
            .map(|(n, t)| {
                format!(
                    "{{\"name\":{},\"type\":{}}}",
                    json_str(&n.to_string()),
                    json_str(&type_text(t))
                )
            })
            .collect();
        let http = match &h.kinds.http {
            Some(http) => format!(
                "{{\"method\":{},\"path\":{},\"access\":{}}}",
                json_str(&http.method),
                json_str(&http.bind.path),
                json_str(&http.bind.access)
            ),
            None => "null".into(),
        };
        let (returns, error) = ret_texts(&h.ret);
        let publishes = match &h.kinds.publish {
            Some(p) => format!(
                "{{\"room\":{},\"action\":{}}}",
                json_str(&p.room_text),
                json_str(&p.action)
            ),
            None => "null".into(),
        };
        methods.push(format!(
            "{{\"name\":{name},\"doc\":{},\"local\":{},\"remote\":{},\"http\":{http},\"publishes\":{publishes},\"async\":{},\"guarded\":{},\"args\":[{}],\"returns\":{},\"error\":{error}}}",
            json_str(&h.doc),
            h.kinds.local,
            h.kinds.remote,
            h.is_async,
            h.guard.is_some() || app.guard.is_some(),
            args.join(","),
            json_str(&returns),
        ));
    }
    let persist = match app.persist {
        Persist::Always => "always",
        Persist::OnChange => "on_change",
        Persist::Never => "never",
    };
    format!(
        "{{\"hearth_api\":1,\"app\":{},\"persist\":\"{persist}\",\"request\":\"{{\\\"<method>\\\": {{<named arguments>}}}}\",\"reply\":{{\"ok\":\"{{\\\"ok\\\": <returns>}}\",\"error\":\"{{\\\"error\\\": {{\\\"code\\\": string, \\\"message\\\": string, \\\"details\\\"?: any}}}}\"}},\"methods\":[{}],\"ws\":[{}],\"timers\":[{}],\"rust_client\":{}}}",
        json_str(&type_text(ty)),
        methods.join(","),
        ws.join(","),
        timers.join(","),
        json_str(&client.to_string()),
    )
}

/// The body of the `client` module: one async fn per message-callable
/// method (`#[local]` or `#[remote]`).
pub fn client(app: &App) -> TokenStream {
    let fns = app
        .handlers
        .iter()
        .filter(|h| h.kinds.local || h.kinds.remote)
        .map(client_fn);
    quote!(#(#fns)*)
}

fn client_fn(h: &Handler) -> TokenStream {
    let ident = &h.ident;
    let method = ident.to_string();
    let names: Vec<_> = h.args.iter().map(|(n, _)| n).collect();
    let types: Vec<_> = h.args.iter().map(|(_, t)| t).collect();
    let ok: TokenStream = match &h.ret {
        Ret::Unit => quote!(()),
        Ret::Plain(t) | Ret::Result(t, _) => quote!(#t),
    };
    let doc = format!(
        "Calls `{method}` of the app at `target`{}. {}",
        match (h.kinds.local, h.kinds.remote) {
            (true, true) => " (local or remote)",
            (false, true) => " (from another node)",
            _ => " (on the same node)",
        },
        h.doc
    );
    let within = format_ident!("{}_within", ident);
    let doc_within = format!("[`{method}`] with a timeout in milliseconds.");
    let lifetime = if names.is_empty() {
        quote!()
    } else {
        quote!(<'hearth>)
    };
    quote! {
        #[doc = #doc]
        pub async fn #ident(
            target: &::hearth_sdk::Address,
            #(#names: #types),*
        ) -> ::core::result::Result<#ok, ::hearth_sdk::rpc::ClientError> {
            #within(target, #(#names,)* ::hearth_sdk::DEFAULT_ASK_TIMEOUT_MS).await
        }

        #[doc = #doc_within]
        pub async fn #within(
            target: &::hearth_sdk::Address,
            #(#names: #types,)*
            timeout_ms: u64,
        ) -> ::core::result::Result<#ok, ::hearth_sdk::rpc::ClientError> {
            #[derive(::hearth_sdk::rpc::__private::serde::Serialize)]
            #[serde(crate = "hearth_sdk::rpc::__private::serde")]
            struct Args #lifetime { #(#names: &'hearth #types),* }
            ::hearth_sdk::rpc::call_within(target, #method, &Args { #(#names: &#names),* }, timeout_ms).await
        }
    }
}
