//! The console's plans: each plan of a mode's catalog with its terms in force and its
//! history, and an editor. The editor is a form (markup, tiers as rows, the subscription's
//! fee and credits, caps, top-up packs, the failed-request policy) whose Preview shows what
//! would change and what a sample request would cost; the previewed change is then saved
//! as a new version with a reason. Terms the form does not cover (per-model rates, allowed
//! models, …) are edited as JSON below it.

use leptos::prelude::*;
use leptos_router::components::Form;
use leptos_router::hooks::use_query_map;
use leptos_router::params::ParamsMap;
use serde::{Deserialize, Serialize};

use super::prices::admin_models;
use super::{failure, AdminNav, CatalogModes};
use crate::error::AppError;

#[cfg(feature = "ssr")]
use super::{catalog_mode, core, require_staff, sample_tokens};
#[cfg(feature = "ssr")]
use crate::core::admin::Role;

/// Blank tier rows the editor offers below a plan's tiers, to add new ones.
const BLANK_TIERS: usize = 2;

/// The editor's fields as text, the way a form sends them back. `None`: not sent, so not
/// changed (a preview link may name only the terms it changes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PlanFields {
    pub markup_percent: Option<String>,
    /// Tier rows in order; a row whose two cells are empty is no tier.
    pub tier_from: Option<Vec<String>>,
    pub tier_discount: Option<Vec<String>>,
    pub recurring_fee: Option<String>,
    pub included_credits: Option<String>,
    pub rollover: Option<bool>,
    pub grace_days: Option<String>,
    pub daily_spend_cap: Option<String>,
    pub monthly_spend_cap: Option<String>,
    pub max_request_cost: Option<String>,
    pub low_balance_threshold: Option<String>,
    pub topup_packs: Option<String>,
    pub min_topup: Option<String>,
    pub max_topup: Option<String>,
    pub failed_request_policy: Option<String>,
}

impl PlanFields {
    /// The fields a submitted editor left in the page's query. The hidden `form` field
    /// says the form was sent, so an unticked rollover box means "no rollover".
    fn from_query(q: &ParamsMap) -> PlanFields {
        PlanFields {
            markup_percent: q.get("markup_percent"),
            tier_from: q.get_all("tier_from"),
            tier_discount: q.get_all("tier_discount"),
            recurring_fee: q.get("recurring_fee"),
            included_credits: q.get("included_credits"),
            rollover: q.get("form").map(|_| q.get("rollover").is_some()),
            grace_days: q.get("grace_days"),
            daily_spend_cap: q.get("daily_spend_cap"),
            monthly_spend_cap: q.get("monthly_spend_cap"),
            max_request_cost: q.get("max_request_cost"),
            low_balance_threshold: q.get("low_balance_threshold"),
            topup_packs: q.get("topup_packs"),
            min_topup: q.get("min_topup"),
            max_topup: q.get("max_topup"),
            failed_request_policy: q.get("failed_request_policy"),
        }
    }

    /// Every field as the terms in force fill it in (exact amounts, no `$`).
    #[cfg(feature = "ssr")]
    fn of_terms(t: &crate::core::pricing::PlanTerms) -> PlanFields {
        let amount = |m: crate::core::money::Money| Some(m.display_plain());
        let optional = |m: Option<crate::core::money::Money>| {
            Some(m.map(|m| m.display_plain()).unwrap_or_default())
        };
        PlanFields {
            markup_percent: Some(t.markup_percent.to_string()),
            tier_from: Some(t.tiers.iter().map(|t| t.from_tokens.to_string()).collect()),
            tier_discount: Some(
                t.tiers
                    .iter()
                    .map(|t| t.discount_percent.to_string())
                    .collect(),
            ),
            recurring_fee: amount(t.recurring_fee),
            included_credits: amount(t.included_credits),
            rollover: Some(t.rollover),
            grace_days: Some(t.grace_days.to_string()),
            daily_spend_cap: optional(t.daily_spend_cap),
            monthly_spend_cap: optional(t.monthly_spend_cap),
            max_request_cost: optional(t.max_request_cost),
            low_balance_threshold: amount(t.low_balance_threshold),
            topup_packs: Some(
                t.topup_packs
                    .iter()
                    .map(|m| m.display_plain())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            min_topup: amount(t.min_topup),
            max_topup: amount(t.max_topup),
            failed_request_policy: serde_json::to_value(t.failed_request_policy)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string)),
        }
    }

    /// These fields where they were sent, the others from `base`.
    #[cfg(feature = "ssr")]
    fn over(self, base: PlanFields) -> PlanFields {
        PlanFields {
            markup_percent: self.markup_percent.or(base.markup_percent),
            tier_from: self.tier_from.or(base.tier_from),
            tier_discount: self.tier_discount.or(base.tier_discount),
            recurring_fee: self.recurring_fee.or(base.recurring_fee),
            included_credits: self.included_credits.or(base.included_credits),
            rollover: self.rollover.or(base.rollover),
            grace_days: self.grace_days.or(base.grace_days),
            daily_spend_cap: self.daily_spend_cap.or(base.daily_spend_cap),
            monthly_spend_cap: self.monthly_spend_cap.or(base.monthly_spend_cap),
            max_request_cost: self.max_request_cost.or(base.max_request_cost),
            low_balance_threshold: self.low_balance_threshold.or(base.low_balance_threshold),
            topup_packs: self.topup_packs.or(base.topup_packs),
            min_topup: self.min_topup.or(base.min_topup),
            max_topup: self.max_topup.or(base.max_topup),
            failed_request_policy: self.failed_request_policy.or(base.failed_request_policy),
        }
    }

    /// The sent fields as a change of terms, in the API's shape (`PATCH /v1/plans/{id}`),
    /// or what is wrong with the first field that is not a value. The core checks the
    /// terms as a whole when it merges them.
    #[cfg(feature = "ssr")]
    fn changes(&self) -> Result<serde_json::Map<String, serde_json::Value>, AppError> {
        use crate::core::money::Money;
        use crate::core::pricing::{Percent, Tier};
        use serde_json::{json, Value};
        let bad = |what: &str, like: &str| AppError::Invalid(format!("{what}: {like}."));
        let amount = |text: &str, what: &str| {
            Money::parse_non_negative(text.trim().trim_start_matches('$'))
                .map_err(|_| bad(what, "an amount like 12.50 (0 for none)"))
        };
        let optional = |text: &str, what: &str| -> Result<Value, AppError> {
            let text = text.trim();
            if text.is_empty() {
                return Ok(Value::Null);
            }
            Money::parse_non_negative(text.trim_start_matches('$'))
                .map(|m| json!(m))
                .map_err(|_| bad(what, "an amount like 12.50, or empty for no limit"))
        };
        let percent = |text: &str, what: &str| {
            Percent::parse(text.trim().trim_end_matches('%').trim())
                .ok_or_else(|| bad(what, "a percentage like 15 or 12.5"))
        };
        let mut out = serde_json::Map::new();
        let mut put = |key: &str, value: Value| {
            out.insert(key.to_string(), value);
        };
        if let Some(t) = &self.markup_percent {
            put("markup_percent", json!(percent(t, "Markup")?));
        }
        if self.tier_from.is_some() || self.tier_discount.is_some() {
            let from = self.tier_from.clone().unwrap_or_default();
            let discount = self.tier_discount.clone().unwrap_or_default();
            let mut tiers = Vec::new();
            for i in 0..from.len().max(discount.len()) {
                let f = from.get(i).map(|s| s.trim()).unwrap_or("");
                let d = discount.get(i).map(|s| s.trim()).unwrap_or("");
                if f.is_empty() && d.is_empty() {
                    continue;
                }
                let row = format!("Tier {}", i + 1);
                tiers.push(Tier {
                    from_tokens: f
                        .replace([',', '_'], "")
                        .parse()
                        .map_err(|_| bad(&row, "from a whole number of tokens, like 1000000"))?,
                    discount_percent: percent(d, &row)?,
                });
            }
            put("tiers", json!(tiers));
        }
        if let Some(t) = &self.recurring_fee {
            put("recurring_fee", json!(amount(t, "Monthly fee")?));
        }
        if let Some(t) = &self.included_credits {
            put("included_credits", json!(amount(t, "Included credits")?));
        }
        if let Some(r) = self.rollover {
            put("rollover", json!(r));
        }
        if let Some(t) = &self.grace_days {
            let days: u32 = t
                .trim()
                .parse()
                .map_err(|_| bad("Grace days", "a whole number of days, 0-60"))?;
            put("grace_days", json!(days));
        }
        if let Some(t) = &self.daily_spend_cap {
            put("daily_spend_cap", optional(t, "Daily spend cap")?);
        }
        if let Some(t) = &self.monthly_spend_cap {
            put("monthly_spend_cap", optional(t, "Monthly spend cap")?);
        }
        if let Some(t) = &self.max_request_cost {
            put("max_request_cost", optional(t, "Largest request")?);
        }
        if let Some(t) = &self.low_balance_threshold {
            put(
                "low_balance_threshold",
                json!(amount(t, "Low-balance warning")?),
            );
        }
        if let Some(t) = &self.topup_packs {
            let packs = t
                .split([',', ' '])
                .filter(|p| !p.trim().is_empty())
                .map(|p| amount(p, "Top-up packs"))
                .collect::<Result<Vec<_>, _>>()?;
            put("topup_packs", json!(packs));
        }
        if let Some(t) = &self.min_topup {
            put("min_topup", json!(amount(t, "Smallest top-up")?));
        }
        if let Some(t) = &self.max_topup {
            put("max_topup", json!(amount(t, "Largest top-up")?));
        }
        if let Some(t) = &self.failed_request_policy {
            if !POLICIES.iter().any(|(p, _)| p == t) {
                return Err(bad(
                    "Failed requests",
                    "charge_input, charge_all or charge_nothing",
                ));
            }
            put("failed_request_policy", json!(t));
        }
        Ok(out)
    }
}

/// The failed-request policies, as the terms name them and as people read them.
const POLICIES: [(&str, &str); 3] = [
    ("charge_input", "Charge input and cache tokens, not output"),
    ("charge_all", "Charge every token"),
    ("charge_nothing", "Charge nothing"),
];

/// A previewed change: what it changes and what a sample request would cost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanPreviewView {
    pub text: String,
    /// (term, in force, proposed), as JSON values.
    pub changes: Vec<(String, String, String)>,
    /// The change to save, as the JSON object `admin_edit_plan` takes.
    pub changes_json: String,
    pub next_version: i64,
}

/// A plan as the console shows it: terms in force, history, the editor's fields and the
/// preview asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanView {
    pub id: String,
    pub name: String,
    pub version: i64,
    pub terms: String,
    /// (version, since, terms), newest first.
    pub history: Vec<(i64, String, String)>,
    /// The editor filled in: the terms in force, or what was sent for this plan.
    pub fields: PlanFields,
    /// Whether this is the plan being edited (its editor starts open).
    pub editing: bool,
    /// The preview asked for on this plan, or why it could not be made.
    pub preview: Option<Result<PlanPreviewView, String>>,
}

#[server(prefix = "/api", endpoint = "admin_plans")]
pub async fn admin_plans(
    mode: Option<String>,
    plan: Option<String>,
    fields: Option<PlanFields>,
    model: Option<String>,
    input: Option<String>,
    output: Option<String>,
) -> Result<Vec<PlanView>, AppError> {
    require_staff(Role::Viewer).await?;
    let core = core();
    let mode = catalog_mode(mode.as_deref())?;
    let plans = crate::core::console::plans(&core, mode).await?;
    let mut out = Vec::new();
    for h in plans {
        let p = h.plan;
        let history = h
            .versions
            .into_iter()
            .map(|v| (v.version, v.created_at.to_rfc3339(), v.terms))
            .collect();
        let in_force = PlanFields::of_terms(&p.terms);
        let editing = plan.as_deref() == Some(p.id.as_str());
        let (shown, preview) = match (&fields, editing) {
            (Some(sent), true) => {
                let made: Result<PlanPreviewView, AppError> = async {
                    let changes = sent.changes()?;
                    // A preview link that names no model prices the price book's first.
                    let model = match model.clone().filter(|m| !m.is_empty()) {
                        Some(m) => m,
                        None => crate::core::console::price_book(&core, mode)
                            .await?
                            .into_iter()
                            .next()
                            .map(|m| m.id)
                            .unwrap_or_default(),
                    };
                    let tokens = sample_tokens(input.as_deref(), output.as_deref())?;
                    let v = crate::core::admin::preview_plan(
                        &core, mode, &p.id, &changes, &model, &tokens,
                    )
                    .await?;
                    let shown = |v: &serde_json::Value| shown_term(v);
                    Ok(PlanPreviewView {
                        text: format!(
                            "A request of {} input and {} output tokens of {model} costs {} under version {} (in force) and {} with these changes.",
                            tokens.input,
                            tokens.output,
                            v.before.display_money(),
                            v.version,
                            v.after.display_money()
                        ),
                        changes: v
                            .changed
                            .iter()
                            .map(|(k, to)| {
                                let from = v.was.get(k).map(shown).unwrap_or_default();
                                (k.clone(), from, shown(to))
                            })
                            .collect(),
                        changes_json: serde_json::Value::Object(v.changed).to_string(),
                        next_version: v.version + 1,
                    })
                }
                .await;
                (
                    sent.clone().over(in_force),
                    Some(made.map_err(|e| e.to_string())),
                )
            }
            _ => (in_force, None),
        };
        out.push(PlanView {
            terms: serde_json::to_string_pretty(&p.terms).unwrap_or_default(),
            id: p.id,
            name: p.name,
            version: p.version,
            history,
            fields: shown,
            editing,
            preview,
        });
    }
    Ok(out)
}

/// A term's value for people: amounts and names as they are, none for null, a tier as
/// "from N tokens: P% off", lists joined with commas.
#[cfg(feature = "ssr")]
fn shown_term(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "none".into(),
        Value::Array(items) if items.is_empty() => "none".into(),
        Value::Array(items) => items.iter().map(shown_term).collect::<Vec<_>>().join(", "),
        Value::Object(o) if o.contains_key("from_tokens") => format!(
            "from {} tokens: {}% off",
            o.get("from_tokens").map(shown_term).unwrap_or_default(),
            o.get("discount_percent")
                .map(shown_term)
                .unwrap_or_default()
        ),
        other => other.to_string(),
    }
}

#[server(prefix = "/api", endpoint = "admin_edit_plan")]
pub async fn admin_edit_plan(
    mode: Option<String>,
    id: String,
    changes: String,
    reason: String,
) -> Result<(), AppError> {
    let staff = require_staff(Role::Admin).await?;
    let mode = catalog_mode(mode.as_deref())?;
    let changes: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&changes)
        .map_err(|e| AppError::Invalid(format!("The changes must be a JSON object: {e}")))?;
    crate::core::admin::edit_plan(&core(), &staff, mode, &id, &changes, &reason).await?;
    Ok(())
}

#[component]
pub fn AdminPlans() -> impl IntoView {
    let query = use_query_map();
    let edit = ServerAction::<AdminEditPlan>::new();
    let data = Resource::new(
        move || {
            let q = query.read();
            (
                edit.version().get(),
                q.get("mode"),
                q.get("plan"),
                PlanFields::from_query(&q),
                q.get("model"),
                q.get("input"),
                q.get("output"),
            )
        },
        |(_, mode, plan, fields, model, input, output)| {
            admin_plans(mode, plan, Some(fields), model, input, output)
        },
    );
    let mode = move || query.read().get("mode").unwrap_or_else(|| "live".into());
    let models = Resource::new(move || query.read().get("mode"), admin_models);
    let sample = move |key: &str, default: &str| {
        query
            .read()
            .get(key)
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_string())
    };
    view! {
        <AdminNav/>
        <CatalogModes page="/admin/plans"/>
        // Both resources are awaited in one `Suspend`, not read with `.get()` (the second
        // inside the first's closure): on the server that pattern could leave the render
        // waiting forever, now and then (leptos-rs/leptos#4578), and the page never came.
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                let plans = match data.await {
                    Err(e) => return failure(e),
                    Ok(plans) => plans,
                };
                let model_ids: Vec<String> = models
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .map(|m| m.id)
                    .collect();
                let chosen = query.read_untracked().get("model");
                plans.into_iter().map(|p| {
                    let id = p.id.clone();
                    let model_options = model_ids
                        .iter()
                        .map(|m| {
                            let selected = chosen.as_deref() == Some(m.as_str());
                            view! { <option value=m.clone() selected=selected>{m.clone()}</option> }
                        })
                        .collect_view();
                    let preview = p.preview.clone().map(|r| match r {
                        Ok(v) => view! { <PreviewAndSave plan=id.clone() mode=mode() preview=v edit=edit/> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert" data-testid="plan-preview">{e}</p> }.into_any(),
                    });
                    view! {
                    <section class="card">
                        <h2>{p.name.clone()} " " <small class="muted">{id.clone()} " · version " {p.version}</small></h2>
                        <details data-testid=format!("plan-terms-{id}")>
                            <summary>"Terms in force (JSON)"</summary>
                            <pre class="report">{p.terms.clone()}</pre>
                        </details>
                        <details data-testid=format!("plan-history-{id}")>
                            <summary>{match p.history.len() { 1 => "History (1 version)".to_string(), n => format!("History ({n} versions)") }}</summary>
                            <ol reversed>
                                {p.history.iter().map(|(v, since, terms)| view! {
                                    <li><strong>{format!("v{v}")}</strong> " from " {since.clone()} <pre class="report">{terms.clone()}</pre></li>
                                }).collect_view()}
                            </ol>
                        </details>
                        <details open=p.editing data-testid=format!("plan-editor-{id}")>
                            <summary>"Edit terms"</summary>
                            <PlanEditor plan=id.clone() mode=mode() fields=p.fields.clone() model_options=model_options.into_any() input=sample("input", "10000") output=sample("output", "2000")/>
                        </details>
                        {preview}
                        <details>
                            <summary>"Other terms as JSON (per-model rates, allowed models, …)"</summary>
                            <ActionForm action=edit attr:class="stacked-form">
                                <input type="hidden" name="mode" value=mode/>
                                <input type="hidden" name="id" value=id.clone()/>
                                <label>"Changes (JSON; a new version, effective now) "
                                    <textarea name="changes" rows="3" cols="60" data-testid=format!("plan-changes-{id}")>"{\"allowed_models\": null}"</textarea>
                                </label>
                                <label>"Reason " <input type="text" name="reason" required data-testid=format!("plan-json-reason-{id}")/></label>
                                <button type="submit" data-testid=format!("plan-json-save-{id}")>"Save new version"</button>
                            </ActionForm>
                        </details>
                    </section>
                }}).collect_view().into_any()
            })}
        </Suspense>
        <Show when=move || matches!(edit.value().get(), Some(Ok(())))>
            <p class="ok" role="status" data-testid="plan-saved">"Saved as a new version, in force now."</p>
        </Show>
        {move || edit.value().get().and_then(|r| r.err()).map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })}
    }
}

/// The editor of one plan: a GET form, so Preview works without JavaScript and the
/// preview is a link that can be shared.
#[component]
fn PlanEditor(
    plan: String,
    mode: String,
    fields: PlanFields,
    model_options: AnyView,
    input: String,
    output: String,
) -> impl IntoView {
    let f = fields;
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let from = f.tier_from.clone().unwrap_or_default();
    let discount = f.tier_discount.clone().unwrap_or_default();
    let rows = from.len().max(discount.len()) + BLANK_TIERS;
    let tiers = (0..rows)
        .map(|i| {
            let n = i + 1;
            view! {
                <tr>
                    <td><input type="text" inputmode="numeric" name="tier_from" aria-label=format!("Tier {n}: from tokens") value=from.get(i).cloned().unwrap_or_default() data-testid=format!("tier-from-{n}")/></td>
                    <td><input type="text" inputmode="decimal" name="tier_discount" aria-label=format!("Tier {n}: discount (%)") value=discount.get(i).cloned().unwrap_or_default() data-testid=format!("tier-discount-{n}")/></td>
                </tr>
            }
        })
        .collect_view();
    let policy = text(&f.failed_request_policy);
    let policies = POLICIES
        .iter()
        .map(|(value, label)| {
            view! { <option value=*value selected=policy == *value>{*label}</option> }
        })
        .collect_view();
    let form_id = format!("plan-form-{plan}");
    view! {
        <Form method="GET" action="/admin/plans" attr:class="plan-form" attr:data-testid=form_id>
            <input type="hidden" name="mode" value=mode/>
            <input type="hidden" name="plan" value=plan.clone()/>
            <input type="hidden" name="form" value="1"/>
            <fieldset>
                <legend>"Prices"</legend>
                <label>"Markup on list prices (%) " <input type="text" inputmode="decimal" name="markup_percent" value=text(&f.markup_percent) data-testid=format!("markup-{plan}")/></label>
                <p class="muted">"Volume tiers: from this many tokens used in a billing period on, the discount applies. Leave a row empty to drop it."</p>
                <div class="table-wrap" tabindex="0"><table data-testid=format!("tiers-{plan}")>
                    <thead><tr><th>"From tokens"</th><th>"Discount (%)"</th></tr></thead>
                    <tbody>{tiers}</tbody>
                </table></div>
            </fieldset>
            <fieldset>
                <legend>"Subscription"</legend>
                <label>"Monthly fee (0: not sold as a subscription) " <input type="text" inputmode="decimal" name="recurring_fee" value=text(&f.recurring_fee) data-testid=format!("fee-{plan}")/></label>
                <label>"Included credits each month " <input type="text" inputmode="decimal" name="included_credits" value=text(&f.included_credits) data-testid=format!("included-{plan}")/></label>
                <label class="check"><input type="checkbox" name="rollover" checked=f.rollover.unwrap_or(false)/> "Unused credits roll over"</label>
                <label>"Days of grace after a failed renewal " <input type="text" inputmode="numeric" name="grace_days" value=text(&f.grace_days)/></label>
            </fieldset>
            <fieldset>
                <legend>"Limits (empty: none)"</legend>
                <label>"Daily spend cap " <input type="text" inputmode="decimal" name="daily_spend_cap" value=text(&f.daily_spend_cap) data-testid=format!("daily-cap-{plan}")/></label>
                <label>"Monthly spend cap " <input type="text" inputmode="decimal" name="monthly_spend_cap" value=text(&f.monthly_spend_cap)/></label>
                <label>"Largest cost of one proxied request " <input type="text" inputmode="decimal" name="max_request_cost" value=text(&f.max_request_cost)/></label>
                <label>"Warn the customer below " <input type="text" inputmode="decimal" name="low_balance_threshold" value=text(&f.low_balance_threshold) data-testid=format!("low-balance-{plan}")/></label>
            </fieldset>
            <fieldset>
                <legend>"Top-ups"</legend>
                <label>"Packs offered (comma-separated) " <input type="text" name="topup_packs" value=text(&f.topup_packs) data-testid=format!("packs-{plan}")/></label>
                <label>"Smallest top-up " <input type="text" inputmode="decimal" name="min_topup" value=text(&f.min_topup)/></label>
                <label>"Largest top-up " <input type="text" inputmode="decimal" name="max_topup" value=text(&f.max_topup)/></label>
            </fieldset>
            <fieldset>
                <legend>"Failed requests"</legend>
                <label>"A request that fails is charged " <select name="failed_request_policy" data-testid=format!("policy-{plan}")>{policies}</select></label>
            </fieldset>
            <fieldset>
                <legend>"Sample request for the preview"</legend>
                <label>"Model " <select name="model" data-testid=format!("preview-model-{plan}")>{model_options}</select></label>
                <label>"Input tokens " <input type="text" inputmode="numeric" name="input" value=input/></label>
                <label>"Output tokens " <input type="text" inputmode="numeric" name="output" value=output/></label>
            </fieldset>
            <button type="submit" data-testid=format!("preview-{plan}")>"Preview"</button>
        </Form>
    }
}

/// What a previewed change does, and the form that saves exactly that change.
#[component]
fn PreviewAndSave(
    plan: String,
    mode: String,
    preview: PlanPreviewView,
    edit: ServerAction<AdminEditPlan>,
) -> impl IntoView {
    let nothing = preview.changes.is_empty();
    let rows = preview
        .changes
        .iter()
        .map(|(term, from, to)| {
            view! { <tr><td><code>{term.clone()}</code></td><td>{from.clone()}</td><td>{to.clone()}</td></tr> }
        })
        .collect_view();
    view! {
        <div class="plan-preview" data-testid="plan-preview-box">
            <p class="ok" role="status" data-testid="plan-preview">{preview.text.clone()}</p>
            {if nothing {
                view! { <p data-testid="plan-changes">"These terms are the ones in force: nothing to save."</p> }.into_any()
            } else {
                view! {
                    <div class="table-wrap" tabindex="0"><table data-testid="plan-changes">
                        <thead><tr><th>"Term"</th><th>"In force"</th><th>"Proposed"</th></tr></thead>
                        <tbody>{rows}</tbody>
                    </table></div>
                    <ActionForm action=edit attr:class="stacked-form">
                        <input type="hidden" name="mode" value=mode/>
                        <input type="hidden" name="id" value=plan.clone()/>
                        <input type="hidden" name="changes" value=preview.changes_json.clone()/>
                        <label>"Reason " <input type="text" name="reason" required data-testid=format!("plan-reason-{plan}")/></label>
                        <button type="submit" data-testid=format!("plan-save-{plan}")>{format!("Save as version {}, in force now", preview.next_version)}</button>
                    </ActionForm>
                }.into_any()
            }}
        </div>
    }
}
