//! The console's price book: a mode's models with their rates, a preview of what new
//! rates would charge a sample request, saving them as a new version, and every version
//! with who made it and why.

use leptos::prelude::*;
use leptos_router::components::Form;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use super::{failure, AdminNav, CatalogModes};
use crate::error::AppError;

#[cfg(feature = "ssr")]
use super::{catalog_mode, core, require_staff, sample_tokens};
#[cfg(feature = "ssr")]
use crate::core::admin::Role;

/// An exact amount without the dollar sign ("0.075"), as forms take it.
#[cfg(feature = "ssr")]
fn plain(m: crate::core::money::Money) -> String {
    m.display_plain()
}

/// The price book's models, for pickers.
#[server(prefix = "/api", endpoint = "admin_models")]
pub async fn admin_models(mode: Option<String>) -> Result<Vec<ModelLine>, AppError> {
    require_staff(Role::Viewer).await?;
    let mode = catalog_mode(mode.as_deref())?;
    let models = crate::core::console::price_book(&core(), mode).await?;
    Ok(models
        .into_iter()
        .map(|m| ModelLine {
            id: m.id,
            provider: m.provider,
            input: plain(m.rates.input),
            output: plain(m.rates.output),
            cache_write: plain(m.rates.cache_write),
            cache_read: plain(m.rates.cache_read),
            batch_discount: m.batch_discount_percent,
        })
        .collect())
}

/// A model of the price book; rates are USD per million tokens, exact decimals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelLine {
    pub id: String,
    pub provider: String,
    pub input: String,
    pub output: String,
    pub cache_write: String,
    pub cache_read: String,
    pub batch_discount: u32,
}

#[server(prefix = "/api", endpoint = "admin_price_preview")]
pub async fn admin_price_preview(
    mode: Option<String>,
    model: String,
    input_rate: String,
    output_rate: String,
    cache_write_rate: String,
    cache_read_rate: String,
    batch_discount: String,
    input: Option<String>,
    output: Option<String>,
) -> Result<String, AppError> {
    require_staff(Role::Viewer).await?;
    let core = core();
    let proposed = proposed_model(
        &model,
        &input_rate,
        &output_rate,
        &cache_write_rate,
        &cache_read_rate,
        &batch_discount,
    )?;
    let tokens = sample_tokens(input.as_deref(), output.as_deref())?;
    let mode = catalog_mode(mode.as_deref())?;
    let v = crate::core::admin::preview_model(&core, mode, &proposed, &tokens).await?;
    Ok(format!(
        "A request of {} input and {} output tokens of {model} costs {} at today's price and {} at the new one.",
        tokens.input,
        tokens.output,
        v.before.display_money(),
        v.after.display_money()
    ))
}

#[cfg(feature = "ssr")]
fn proposed_model(
    model: &str,
    input_rate: &str,
    output_rate: &str,
    cache_write_rate: &str,
    cache_read_rate: &str,
    batch_discount: &str,
) -> Result<crate::core::pricing::ModelPrice, AppError> {
    use crate::core::money::Money;
    let rate = |t: &str, what: &str| {
        Money::parse_non_negative(t.trim().trim_start_matches('$')).map_err(|_| {
            AppError::Invalid(format!(
                "The {what} rate is an amount per million tokens, like 3 or 0.30."
            ))
        })
    };
    Ok(crate::core::pricing::ModelPrice::proposed(
        model,
        "",
        crate::core::pricing::Rates {
            input: rate(input_rate, "input")?,
            output: rate(output_rate, "output")?,
            cache_write: rate(cache_write_rate, "cache-write")?,
            cache_read: rate(cache_read_rate, "cache-read")?,
            cache_write_1h: None,
        },
        batch_discount.trim().parse().map_err(|_| {
            AppError::Invalid("The batch discount is a whole percentage, 0-100.".into())
        })?,
    ))
}

#[server(prefix = "/api", endpoint = "admin_edit_price")]
pub async fn admin_edit_price(
    mode: Option<String>,
    model: String,
    input_rate: String,
    output_rate: String,
    cache_write_rate: String,
    cache_read_rate: String,
    batch_discount: String,
    reason: String,
) -> Result<(), AppError> {
    let staff = require_staff(Role::Admin).await?;
    let proposed = proposed_model(
        &model,
        &input_rate,
        &output_rate,
        &cache_write_rate,
        &cache_read_rate,
        &batch_discount,
    )?;
    let mode = catalog_mode(mode.as_deref())?;
    crate::core::admin::edit_model(&core(), &staff, mode, &proposed, &reason).await?;
    Ok(())
}

/// One version of the price book, with who made it and why (from its audit entry).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceVersionLine {
    pub since: String,
    pub model: String,
    pub version: i64,
    pub rates: String,
    pub who: String,
    pub why: String,
}

/// Every version of a mode's price book, newest first.
#[server(prefix = "/api", endpoint = "admin_price_history")]
pub async fn admin_price_history(mode: Option<String>) -> Result<Vec<PriceVersionLine>, AppError> {
    require_staff(Role::Viewer).await?;
    let mode = catalog_mode(mode.as_deref())?;
    let rows = crate::core::console::price_history(&core(), mode).await?;
    Ok(rows
        .into_iter()
        .map(|v| {
            let m = v.price;
            PriceVersionLine {
                who: v.actor.unwrap_or_else(|| "(seeded)".into()),
                why: v.reason.unwrap_or_default(),
                since: m.since.to_rfc3339(),
                model: m.id,
                version: m.version,
                rates: format!(
                    "input {} · output {} · cache write {} · cache read {} · batch −{}%",
                    plain(m.rates.input),
                    plain(m.rates.output),
                    plain(m.rates.cache_write),
                    plain(m.rates.cache_read),
                    m.batch_discount_percent
                ),
            }
        })
        .collect())
}

#[component]
pub fn AdminPrices() -> impl IntoView {
    let query = use_query_map();
    let save = ServerAction::<AdminEditPrice>::new();
    let models = Resource::new(
        move || (save.version().get(), query.read().get("mode")),
        |(_, mode)| admin_models(mode),
    );
    let history = Resource::new(
        move || (save.version().get(), query.read().get("mode")),
        |(_, mode)| admin_price_history(mode),
    );
    let preview = Resource::new(
        move || {
            let q = query.read();
            q.get("model").map(|m| {
                (
                    q.get("mode"),
                    m,
                    q.get("input_rate").unwrap_or_default(),
                    q.get("output_rate").unwrap_or_default(),
                    q.get("cache_write_rate").unwrap_or_default(),
                    q.get("cache_read_rate").unwrap_or_default(),
                    q.get("batch_discount").unwrap_or_default(),
                    q.get("input"),
                    q.get("output"),
                )
            })
        },
        |args| async move {
            match args {
                None => None,
                Some((mode, m, i, o, cw, cr, b, ti, to)) => {
                    Some(admin_price_preview(mode, m, i, o, cw, cr, b, ti, to).await)
                }
            }
        },
    );
    let q = move |k: &str| query.read().get(k).unwrap_or_default();
    let mode = move || query.read().get("mode").unwrap_or_else(|| "live".into());
    view! {
        <AdminNav/>
        <CatalogModes page="/admin/prices"/>
        <section class="card">
            <h1>"Price book " <small class="muted">{move || format!("{} mode", mode())}</small></h1>
            <p>"List prices per million tokens. Each mode has its own price book. A new price is a new version, applied to usage recorded from now on; recorded usage keeps the version it was charged."</p>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || models.get().map(|r| match r {
                    Err(e) => failure(e),
                    Ok(rows) => view! {
                        <div class="table-wrap" tabindex="0"><table data-testid="price-book">
                            <thead><tr><th>"Model"</th><th>"Provider"</th><th class="num">"Input"</th><th class="num">"Output"</th><th class="num">"Cache write"</th><th class="num">"Cache read"</th><th class="num">"Batch"</th><th></th></tr></thead>
                            <tbody>{rows.into_iter().map(|m| {
                                let edit = format!(
                                    "/admin/prices?mode={}&model={}&input_rate={}&output_rate={}&cache_write_rate={}&cache_read_rate={}&batch_discount={}",
                                    mode(), m.id, m.input, m.output, m.cache_write, m.cache_read, m.batch_discount
                                );
                                view! {
                                    <tr>
                                        <td><code>{m.id.clone()}</code></td><td>{m.provider}</td>
                                        <td class="num">{m.input}</td><td class="num">{m.output}</td>
                                        <td class="num">{m.cache_write}</td><td class="num">{m.cache_read}</td>
                                        <td class="num">{format!("{}%", m.batch_discount)}</td>
                                        <td><a href=edit data-testid=format!("edit-price-{}", m.id)>"Edit"</a></td>
                                    </tr>
                                }
                            }).collect_view()}</tbody>
                        </table></div>
                    }.into_any(),
                })}
            </Suspense>
        </section>
        <Show when=move || query.read().get("model").is_some()>
            <section class="card">
                <h2>"Change " <code>{move || q("model")}</code></h2>
                <Form method="GET" action="/admin/prices" attr:class="stacked-form">
                    <input type="hidden" name="mode" value=mode/>
                    <input type="hidden" name="model" value=move || q("model")/>
                    <label>"Input " <input type="text" inputmode="decimal" name="input_rate" value=move || q("input_rate") data-testid="rate-input"/></label>
                    <label>"Output " <input type="text" inputmode="decimal" name="output_rate" value=move || q("output_rate") data-testid="rate-output"/></label>
                    <label>"Cache write " <input type="text" inputmode="decimal" name="cache_write_rate" value=move || q("cache_write_rate")/></label>
                    <label>"Cache read " <input type="text" inputmode="decimal" name="cache_read_rate" value=move || q("cache_read_rate")/></label>
                    <label>"Batch discount (%) " <input type="text" inputmode="numeric" name="batch_discount" value=move || q("batch_discount")/></label>
                    <label>"Sample input tokens " <input type="text" inputmode="numeric" name="input" value=move || { let v = q("input"); if v.is_empty() { "10000".to_string() } else { v } }/></label>
                    <label>"Sample output tokens " <input type="text" inputmode="numeric" name="output" value=move || { let v = q("output"); if v.is_empty() { "2000".to_string() } else { v } }/></label>
                    <button type="submit" data-testid="price-preview">"Preview"</button>
                </Form>
                <Suspense fallback=|| ()>
                    {move || preview.get().flatten().map(|r| match r {
                        Ok(text) => view! { <p class="ok" role="status" data-testid="price-preview-text">{text}</p> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert" data-testid="price-preview-text">{e.to_string()}</p> }.into_any(),
                    })}
                </Suspense>
                <ActionForm action=save attr:class="stacked-form">
                    <input type="hidden" name="mode" value=mode/>
                    <input type="hidden" name="model" value=move || q("model")/>
                    <input type="hidden" name="input_rate" value=move || q("input_rate")/>
                    <input type="hidden" name="output_rate" value=move || q("output_rate")/>
                    <input type="hidden" name="cache_write_rate" value=move || q("cache_write_rate")/>
                    <input type="hidden" name="cache_read_rate" value=move || q("cache_read_rate")/>
                    <input type="hidden" name="batch_discount" value=move || q("batch_discount")/>
                    <label>"Reason " <input type="text" name="reason" required data-testid="price-reason"/></label>
                    <button type="submit" data-testid="price-save">"Save this price, effective now"</button>
                </ActionForm>
                <Show when=move || matches!(save.value().get(), Some(Ok(())))>
                    <p class="ok" role="status">"Saved."</p>
                </Show>
                {move || save.value().get().and_then(|r| r.err()).map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })}
            </section>
        </Show>
        <section class="card">
            <h2>"History"</h2>
            <Suspense fallback=|| ()>
                {move || history.get().map(|r| match r {
                    Err(e) => failure(e),
                    Ok(rows) => view! {
                        <div class="table-wrap" tabindex="0"><table data-testid="price-history">
                            <thead><tr><th>"Since"</th><th>"Model"</th><th class="num">"Version"</th><th>"Rates"</th><th>"Who"</th><th>"Reason"</th></tr></thead>
                            <tbody>{rows.into_iter().map(|v| view! {
                                <tr><td>{v.since}</td><td><code>{v.model}</code></td><td class="num">{format!("v{}", v.version)}</td><td>{v.rates}</td><td>{v.who}</td><td>{v.why}</td></tr>
                            }).collect_view()}</tbody>
                        </table></div>
                    }.into_any(),
                })}
            </Suspense>
        </section>
    }
}
