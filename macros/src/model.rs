//! The app as the macro understands it, parsed and checked from the
//! user's `impl`. Every error points at the tokens to fix and says how.

use proc_macro2::{Span, TokenStream};
use syn::spanned::Spanned;
use syn::{
    Attribute, Error, FnArg, GenericArgument, Ident, ImplItem, ImplItemFn, ItemImpl, LitInt,
    LitStr, Pat, Path, PathArguments, Result, ReturnType, Type,
};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Persist {
    Always,
    OnChange,
    Never,
}

pub struct App {
    pub item: ItemImpl,
    pub ty: Type,
    pub persist: Persist,
    pub guard: Option<Path>,
    pub handlers: Vec<Handler>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Receiver {
    Ref,
    Mut,
    None,
}

/// One parameter of a handler, in declaration order.
pub enum Param {
    Ctx,
    State,
    Arg(usize),
}

pub enum Ret {
    Unit,
    Plain(Box<Type>),
    Result(Box<Type>, Box<Type>),
}

#[derive(Default)]
pub struct Kinds {
    pub init: bool,
    pub local: bool,
    pub remote: bool,
    pub fallback: bool,
    pub http: Option<Http>,
    pub ws: Option<Bind>,
    pub timer: Option<u64>,
    pub publish: Option<Publish>,
}

/// `#[publish(room = "room/{room_id}", action = "created")]`: after an
/// `Ok`, publish the result to the room, `{arg}` filled from arguments.
pub struct Publish {
    /// `format!` pieces: literal text and argument names, in order.
    pub room: Vec<RoomPart>,
    pub room_text: String,
    pub action: String,
}

pub enum RoomPart {
    Text(String),
    Arg(Ident),
}

pub struct Http {
    pub method: String,
    pub bind: Bind,
}

pub struct Bind {
    pub path: String,
    pub access: String,
}

pub struct Handler {
    pub ident: Ident,
    pub kinds: Kinds,
    pub guard: Option<Path>,
    pub is_async: bool,
    pub receiver: Receiver,
    pub params: Vec<Param>,
    pub args: Vec<(Ident, Type)>,
    pub ret: Ret,
    pub doc: String,
}

const KINDS: &[&str] = &[
    "init", "local", "remote", "http", "ws", "timer", "fallback", "publish",
];

impl App {
    pub fn parse(args: TokenStream, item: TokenStream) -> Result<App> {
        let mut item: ItemImpl = syn::parse2(item)
            .map_err(|e| Error::new(e.span(), "#[app] goes on an `impl YourState { .. }` block"))?;
        if let Some((_, path, _)) = &item.trait_ {
            return Err(Error::new(
                path.span(),
                "#[app] goes on an inherent `impl YourState`, not on a trait impl",
            ));
        }
        if !item.generics.params.is_empty() {
            return Err(Error::new(
                item.generics.span(),
                "an app's state type cannot be generic: one process has one concrete state",
            ));
        }
        let (persist, guard) = parse_app_args(args)?;
        let mut handlers = Vec::new();
        for impl_item in &mut item.items {
            if let ImplItem::Fn(f) = impl_item {
                if let Some(handler) = Handler::parse(f)? {
                    handlers.push(handler);
                }
            }
        }
        check_unique(&handlers)?;
        let ty = (*item.self_ty).clone();
        Ok(App {
            item,
            ty,
            persist,
            guard,
            handlers,
        })
    }
}

fn parse_app_args(args: TokenStream) -> Result<(Persist, Option<Path>)> {
    let mut persist = Persist::OnChange;
    let mut guard = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("persist") {
            let lit: LitStr = meta.value()?.parse()?;
            persist = match lit.value().as_str() {
                "always" => Persist::Always,
                "on_change" => Persist::OnChange,
                "never" => Persist::Never,
                _ => {
                    return Err(Error::new(
                        lit.span(),
                        "persist is \"always\", \"on_change\" or \"never\"",
                    ))
                }
            };
            Ok(())
        } else if meta.path.is_ident("guard") {
            guard = Some(meta.value()?.parse::<Path>()?);
            Ok(())
        } else {
            Err(meta.error(
                "unknown #[app] argument; use `persist = \"on_change\"|\"always\"|\"never\"` \
                 or `guard = Self::check`",
            ))
        }
    });
    syn::parse::Parser::parse2(parser, args)?;
    Ok((persist, guard))
}

fn check_unique(handlers: &[Handler]) -> Result<()> {
    for (kind, count) in [
        ("#[init]", handlers.iter().filter(|h| h.kinds.init).count()),
        (
            "#[fallback]",
            handlers.iter().filter(|h| h.kinds.fallback).count(),
        ),
    ] {
        if count > 1 {
            let second = handlers
                .iter()
                .filter(|h| {
                    (kind == "#[init]" && h.kinds.init)
                        || (kind == "#[fallback]" && h.kinds.fallback)
                })
                .nth(1)
                .map_or(Span::call_site(), |h| h.ident.span());
            return Err(Error::new(
                second,
                format!("an app has at most one {kind} method"),
            ));
        }
    }
    let mut routes: Vec<(String, String)> = Vec::new();
    for h in handlers {
        let route = match (&h.kinds.http, &h.kinds.ws) {
            (Some(http), _) => (http.method.clone(), http.bind.path.clone()),
            (None, Some(ws)) => ("WS".to_string(), ws.path.clone()),
            _ => continue,
        };
        if routes.contains(&route) {
            return Err(Error::new(
                h.ident.span(),
                format!(
                    "{} {} is bound by another handler already",
                    route.0, route.1
                ),
            ));
        }
        routes.push(route);
    }
    Ok(())
}

impl Handler {
    /// The handler of a method, `None` for a helper. Strips our attributes.
    fn parse(f: &mut ImplItemFn) -> Result<Option<Handler>> {
        let mut kinds = Kinds::default();
        let mut guard = None;
        let mut ours = Vec::new();
        for attr in &f.attrs {
            let Some(name) = KINDS.iter().find(|k| attr.path().is_ident(k)) else {
                continue;
            };
            ours.push(attr.clone());
            parse_kind(attr, name, &mut kinds, &mut guard)?;
        }
        if ours.is_empty() {
            return Ok(None);
        }
        f.attrs
            .retain(|a| !KINDS.iter().any(|k| a.path().is_ident(k)));
        let doc = doc_of(&f.attrs);
        let sig = &f.sig;
        if !sig.generics.params.is_empty() {
            return Err(Error::new(
                sig.generics.span(),
                "a handler cannot be generic: its arguments are decoded from JSON into concrete types",
            ));
        }
        let special = kinds.init || kinds.timer.is_some() || kinds.ws.is_some() || kinds.fallback;
        if special && (kinds.local || kinds.remote || kinds.http.is_some()) {
            return Err(Error::new(
                ours[0].span(),
                "#[init], #[timer], #[ws] and #[fallback] handlers cannot also be #[local], #[remote] or #[http]",
            ));
        }
        if kinds.publish.is_some() && !(kinds.local || kinds.remote || kinds.http.is_some()) {
            return Err(Error::new(
                ours[0].span(),
                "#[publish] goes on a #[local], #[remote] or #[http] handler: it publishes that handler's Ok result",
            ));
        }
        if kinds.fallback && sig.asyncness.is_some() {
            return Err(Error::new(
                sig.asyncness.span(),
                "a #[fallback] handler is sync: it gets the raw message and answers it itself",
            ));
        }
        let is_async = sig.asyncness.is_some();
        let mut receiver = Receiver::None;
        let mut params = Vec::new();
        let mut args = Vec::new();
        for input in &sig.inputs {
            match input {
                FnArg::Receiver(r) => {
                    if r.reference.is_none() {
                        return Err(Error::new(
                            r.span(),
                            "take `&self` or `&mut self`: the app keeps its state between messages",
                        ));
                    }
                    if is_async {
                        return Err(Error::new(
                            r.span(),
                            "an async handler cannot hold `&self`/`&mut self` across `.await`; \
                             take `state: State<Self>` instead and use `state.with(|s| ..)` / `state.update(|s| ..)`",
                        ));
                    }
                    receiver = if r.mutability.is_some() {
                        Receiver::Mut
                    } else {
                        Receiver::Ref
                    };
                }
                FnArg::Typed(pt) => {
                    if is_type_named(&pt.ty, "Ctx") {
                        check_ctx(&pt.ty, is_async)?;
                        params.push(Param::Ctx);
                    } else if is_state(&pt.ty) {
                        if !is_async {
                            return Err(Error::new(pt.ty.span(), "`State<Self>` is for async handlers; a sync handler takes `&self` or `&mut self`"));
                        }
                        params.push(Param::State);
                    } else {
                        let Pat::Ident(name) = &*pt.pat else {
                            return Err(Error::new(pt.pat.span(), "name each argument with a plain identifier: it is the JSON field name"));
                        };
                        check_arg_type(&pt.ty)?;
                        params.push(Param::Arg(args.len()));
                        args.push((name.ident.clone(), (*pt.ty).clone()));
                    }
                }
            }
        }
        if !is_async && receiver == Receiver::None {
            return Err(Error::new(
                sig.ident.span(),
                "a handler takes `&self` or `&mut self` (or is `async` and takes `state: State<Self>`)",
            ));
        }
        let max_args = usize::from(kinds.ws.is_some() || kinds.fallback);
        if (special) && args.len() != max_args {
            let what = if kinds.ws.is_some() {
                "a #[ws] handler takes one argument, `event: WsEvent`"
            } else if kinds.fallback {
                "a #[fallback] handler takes one argument, `msg: Incoming`, and answers it itself"
            } else {
                "#[init] and #[timer] handlers take no arguments besides the state and `ctx`"
            };
            return Err(Error::new(sig.inputs.span(), what));
        }
        let ret = parse_ret(&sig.output)?;
        if kinds.fallback && !matches!(ret, Ret::Unit) {
            return Err(Error::new(
                sig.output.span(),
                "a #[fallback] handler returns nothing: it answers the message itself",
            ));
        }
        if let Some(publish) = &kinds.publish {
            for part in &publish.room {
                if let RoomPart::Arg(name) = part {
                    if !args.iter().any(|(a, _)| a == name) {
                        return Err(Error::new(
                            name.span(),
                            format!(
                                "`{{{name}}}` in the room is not an argument of `{}`",
                                sig.ident
                            ),
                        ));
                    }
                }
            }
        }
        Ok(Some(Handler {
            ident: sig.ident.clone(),
            kinds,
            guard,
            is_async,
            receiver,
            params,
            args,
            ret,
            doc,
        }))
    }
}

fn parse_kind(
    attr: &Attribute,
    name: &str,
    kinds: &mut Kinds,
    guard: &mut Option<Path>,
) -> Result<()> {
    let has_args = !matches!(attr.meta, syn::Meta::Path(_));
    match name {
        "init" | "fallback" => {
            if has_args {
                return Err(Error::new(
                    attr.span(),
                    format!("#[{name}] takes no arguments"),
                ));
            }
            if name == "init" {
                kinds.init = true
            } else {
                kinds.fallback = true
            }
        }
        "local" | "remote" => {
            if name == "local" {
                kinds.local = true
            } else {
                kinds.remote = true
            }
            if has_args {
                attr.parse_nested_meta(|meta| {
                    if meta.path.is_ident("guard") {
                        *guard = Some(meta.value()?.parse()?);
                        Ok(())
                    } else {
                        Err(meta.error(format!("#[{name}] takes only `guard = Self::check`")))
                    }
                })?;
            }
        }
        "http" => {
            let (mut method, mut path, mut access) = (None, None, None);
            attr.parse_nested_meta(|meta| {
                let key = meta.path.get_ident().map(Ident::to_string).unwrap_or_default();
                match key.as_str() {
                    "method" => method = Some(meta.value()?.parse::<LitStr>()?),
                    "path" => path = Some(meta.value()?.parse::<LitStr>()?),
                    "access" => access = Some(meta.value()?.parse::<LitStr>()?),
                    "guard" => *guard = Some(meta.value()?.parse()?),
                    _ => return Err(meta.error("#[http] takes `method = \"GET\"`, `path = \"/api/..\"`, `access = \"public\"|\"authenticated\"|\"local-only\"` and `guard = Self::check`")),
                }
                Ok(())
            })?;
            let method = method.ok_or_else(|| {
                Error::new(
                    attr.span(),
                    "#[http] needs `method = \"GET\"` (or POST, PUT, DELETE...)",
                )
            })?;
            let m = method.value().to_ascii_uppercase();
            if !["GET", "POST", "PUT", "DELETE", "PATCH"].contains(&m.as_str()) {
                return Err(Error::new(
                    method.span(),
                    "method is one of GET, POST, PUT, DELETE, PATCH",
                ));
            }
            let bind = parse_bind(attr, path, access)?;
            kinds.http = Some(Http { method: m, bind });
        }
        "ws" => {
            let (mut path, mut access) = (None, None);
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("path") {
                    path = Some(meta.value()?.parse::<LitStr>()?);
                } else if meta.path.is_ident("access") {
                    access = Some(meta.value()?.parse::<LitStr>()?);
                } else {
                    return Err(meta.error("#[ws] takes `path = \"/ws\"` and `access = \"..\"`"));
                }
                Ok(())
            })?;
            kinds.ws = Some(parse_bind(attr, path, access)?);
        }
        "publish" => kinds.publish = Some(parse_publish(attr)?),
        "timer" => {
            let mut every = None;
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("every_ms") {
                    every = Some(meta.value()?.parse::<LitInt>()?.base10_parse::<u64>()?);
                    Ok(())
                } else {
                    Err(meta.error("#[timer] takes `every_ms = 1000`"))
                }
            })?;
            match every {
                Some(ms) if ms > 0 => kinds.timer = Some(ms),
                _ => {
                    return Err(Error::new(
                        attr.span(),
                        "#[timer] needs `every_ms = <milliseconds above 0>`",
                    ))
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn parse_publish(attr: &Attribute) -> Result<Publish> {
    let (mut room, mut action) = (None, None);
    attr.parse_nested_meta(|meta| {
        if meta.path.is_ident("room") {
            room = Some(meta.value()?.parse::<LitStr>()?);
        } else if meta.path.is_ident("action") {
            action = Some(meta.value()?.parse::<LitStr>()?);
        } else {
            return Err(
                meta.error("#[publish] takes `room = \"room/{arg}\"` and `action = \"created\"`")
            );
        }
        Ok(())
    })?;
    let room = room.ok_or_else(|| Error::new(attr.span(), "#[publish] needs `room = \"...\"`"))?;
    let text = room.value();
    let mut parts = Vec::new();
    let mut rest = text.as_str();
    while let Some(open) = rest.find('{') {
        parts.push(RoomPart::Text(rest[..open].to_string()));
        let Some(close) = rest[open..].find('}') else {
            return Err(Error::new(room.span(), "an unclosed `{` in the room"));
        };
        let name = &rest[open + 1..open + close];
        let mut ident = syn::parse_str::<Ident>(name).map_err(|_| {
            Error::new(room.span(), format!("`{{{name}}}` is not an argument name"))
        })?;
        ident.set_span(room.span());
        parts.push(RoomPart::Arg(ident));
        rest = &rest[open + close + 1..];
    }
    parts.push(RoomPart::Text(rest.to_string()));
    let action = action.map_or_else(|| "updated".to_string(), |a| a.value());
    if !["created", "updated", "deleted"].contains(&action.as_str()) {
        return Err(Error::new(
            attr.span(),
            "action is one of created, updated, deleted",
        ));
    }
    Ok(Publish {
        room: parts,
        room_text: text,
        action,
    })
}

fn parse_bind(attr: &Attribute, path: Option<LitStr>, access: Option<LitStr>) -> Result<Bind> {
    let path = path.ok_or_else(|| {
        Error::new(
            attr.span(),
            "add `path = \"/api/...\"` (under /<process-id>/)",
        )
    })?;
    if !path.value().starts_with('/') {
        return Err(Error::new(path.span(), "a path starts with `/`"));
    }
    let access = match access {
        None => "authenticated".to_string(),
        Some(lit) => match lit.value().as_str() {
            a @ ("public" | "authenticated" | "local-only") => a.to_string(),
            _ => {
                return Err(Error::new(
                    lit.span(),
                    "access is \"public\", \"authenticated\" or \"local-only\"",
                ))
            }
        },
    };
    Ok(Bind {
        path: path.value(),
        access,
    })
}

fn check_ctx(ty: &Type, is_async: bool) -> Result<()> {
    let by_ref = matches!(ty, Type::Reference(_));
    if is_async && by_ref {
        return Err(Error::new(
            ty.span(),
            "an async handler takes `ctx: Ctx` by value (it lives across `.await`)",
        ));
    }
    if !is_async && !by_ref {
        return Err(Error::new(ty.span(), "a sync handler takes `ctx: &Ctx`"));
    }
    Ok(())
}

fn check_arg_type(ty: &Type) -> Result<()> {
    match ty {
        Type::Reference(_) => Err(Error::new(
            ty.span(),
            "handler arguments are decoded from JSON and must be owned: use `String` for `&str`, `Vec<T>` for `&[T]`",
        )),
        Type::ImplTrait(_) => Err(Error::new(ty.span(), "name a concrete type: arguments are decoded from JSON")),
        _ if mentions_self(ty) => Err(Error::new(
            ty.span(),
            "name the type instead of `Self`: the generated client lives outside this impl",
        )),
        _ => Ok(()),
    }
}

fn parse_ret(output: &ReturnType) -> Result<Ret> {
    let ReturnType::Type(_, ty) = output else {
        return Ok(Ret::Unit);
    };
    if mentions_self(ty) {
        return Err(Error::new(
            ty.span(),
            "name the type instead of `Self`: the generated client lives outside this impl",
        ));
    }
    if let Type::Tuple(t) = &**ty {
        if t.elems.is_empty() {
            return Ok(Ret::Unit);
        }
    }
    if let Type::Path(p) = &**ty {
        if let Some(last) = p.path.segments.last() {
            if last.ident == "Result" {
                if let PathArguments::AngleBracketed(a) = &last.arguments {
                    let types: Vec<&Type> = a
                        .args
                        .iter()
                        .filter_map(|g| match g {
                            GenericArgument::Type(t) => Some(t),
                            _ => None,
                        })
                        .collect();
                    if let [ok, err] = types[..] {
                        return Ok(Ret::Result(Box::new(ok.clone()), Box::new(err.clone())));
                    }
                }
                return Err(Error::new(
                    ty.span(),
                    "write the error type out: `Result<T, E>` where `AppError: From<E>` (aliases like `io::Result<T>` hide it)",
                ));
            }
        }
    }
    Ok(Ret::Plain(ty.clone()))
}

pub fn is_type_named(ty: &Type, name: &str) -> bool {
    let ty = match ty {
        Type::Reference(r) => &*r.elem,
        other => other,
    };
    matches!(ty, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == name && s.arguments.is_empty()))
}

fn is_state(ty: &Type) -> bool {
    let Type::Path(p) = ty else { return false };
    let Some(last) = p.path.segments.last() else {
        return false;
    };
    last.ident == "State" && matches!(last.arguments, PathArguments::AngleBracketed(_))
}

fn mentions_self(ty: &Type) -> bool {
    fn walk(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|t| match t {
            proc_macro2::TokenTree::Ident(i) => i == "Self",
            proc_macro2::TokenTree::Group(g) => walk(g.stream()),
            _ => false,
        })
    }
    walk(quote::quote!(#ty))
}

fn doc_of(attrs: &[Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value().trim().to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    lines.join(" ")
}
