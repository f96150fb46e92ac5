//! The console's plans: each plan of a mode's catalog with its terms in force and its
//! history, a preview of what a change would do to a sample request, and saving a change as
//! a new version.

use leptos::prelude::*;
use leptos_router::components::Form;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use super::prices::admin_models;
use super::{failure, AdminNav, CatalogModes};
use crate::error::AppError;

#[cfg(feature = "ssr")]
use super::{catalog_mode, core, require_staff, sample_tokens};
#[cfg(feature = "ssr")]
use crate::core::admin::Role;

/// A plan as the console shows it: terms in force, history, and a price preview.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanView {
    pub id: String,
    pub name: String,
    pub version: i64,
    pub terms: String,
    /// (version, since, terms), newest first.
    pub history: Vec<(i64, String, String)>,
    /// The preview asked for on this plan, or why it could not be made.
    pub preview: Option<Result<String, String>>,
}

#[server(prefix = "/api", endpoint = "admin_plans")]
pub async fn admin_plans(
    mode: Option<String>,
    plan: Option<String>,
    changes: Option<String>,
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
        let preview = if plan.as_deref() == Some(p.id.as_str()) {
            let made: Result<String, AppError> = async {
                let changes: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(changes.as_deref().unwrap_or("{}")).map_err(|e| {
                        AppError::Invalid(format!("The changes must be a JSON object: {e}"))
                    })?;
                let model = model.clone().unwrap_or_default();
                let tokens = sample_tokens(input.as_deref(), output.as_deref())?;
                let v =
                    crate::core::admin::preview_plan(&core, mode, &p.id, &changes, &model, &tokens)
                        .await?;
                Ok(format!(
                    "A request of {} input and {} output tokens of {model} costs {} under version {} (in force) and {} with these changes.",
                    tokens.input,
                    tokens.output,
                    v.before.display_money(),
                    v.version,
                    v.after.display_money()
                ))
            }
            .await;
            Some(made.map_err(|e| e.to_string()))
        } else {
            None
        };
        out.push(PlanView {
            terms: serde_json::to_string_pretty(&p.terms).unwrap_or_default(),
            id: p.id,
            name: p.name,
            version: p.version,
            history,
            preview,
        });
    }
    Ok(out)
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
                q.get("changes"),
                q.get("model"),
                q.get("input"),
                q.get("output"),
            )
        },
        |(_, mode, plan, changes, model, input, output)| {
            admin_plans(mode, plan, changes, model, input, output)
        },
    );
    let mode = move || query.read().get("mode").unwrap_or_else(|| "live".into());
    let models = Resource::new(move || query.read().get("mode"), admin_models);
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
                plans.into_iter().map(|p| {
                    let id = p.id.clone();
                    let pid = id.clone();
                    let eid = id.clone();
                    let model_options = model_ids
                        .iter()
                        .map(|m| view! { <option value=m.clone()>{m.clone()}</option> })
                        .collect_view();
                    view! {
                    <section class="card">
                        <h2>{p.name.clone()} " " <small class="muted">{id.clone()} " · version " {p.version}</small></h2>
                        <pre class="report">{p.terms.clone()}</pre>
                        <details data-testid=format!("plan-history-{id}")>
                            <summary>{format!("History ({} versions)", p.history.len())}</summary>
                            <ol reversed>
                                {p.history.iter().map(|(v, since, terms)| view! {
                                    <li><strong>{format!("v{v}")}</strong> " from " {since.clone()} <pre class="report">{terms.clone()}</pre></li>
                                }).collect_view()}
                            </ol>
                        </details>
                        <h3>"Preview a change"</h3>
                        <Form method="GET" action="/admin/plans" attr:class="stacked-form">
                            <input type="hidden" name="mode" value=mode/>
                            <input type="hidden" name="plan" value=pid.clone()/>
                            <label>"Changes (JSON) " <textarea name="changes" rows="2" cols="60" data-testid=format!("preview-changes-{pid}")>"{\"markup_percent\": \"10\"}"</textarea></label>
                            <label>"Model " <select name="model" data-testid=format!("preview-model-{pid}")>{model_options}</select></label>
                            <label>"Input tokens " <input type="text" inputmode="numeric" name="input" value="10000"/></label>
                            <label>"Output tokens " <input type="text" inputmode="numeric" name="output" value="2000"/></label>
                            <button type="submit" data-testid=format!("preview-{pid}")>"Preview"</button>
                        </Form>
                        {p.preview.clone().map(|r| match r {
                            Ok(text) => view! { <p class="ok" role="status" data-testid="plan-preview">{text}</p> }.into_any(),
                            Err(e) => view! { <p class="error" role="alert" data-testid="plan-preview">{e}</p> }.into_any(),
                        })}
                        <h3>"Save a new version"</h3>
                        <ActionForm action=edit>
                            <input type="hidden" name="mode" value=mode/>
                            <input type="hidden" name="id" value=eid.clone()/>
                            <label>"Changes (JSON; a new version, effective now) "
                                <textarea name="changes" rows="3" cols="60" data-testid=format!("plan-changes-{eid}")>"{\"markup_percent\": \"0\"}"</textarea>
                            </label>
                            <label>"Reason " <input type="text" name="reason" required data-testid=format!("plan-reason-{eid}")/></label>
                            <button type="submit" data-testid=format!("plan-save-{eid}")>"Save new version"</button>
                        </ActionForm>
                    </section>
                }}).collect_view().into_any()
            })}
        </Suspense>
        {move || edit.value().get().and_then(|r| r.err()).map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })}
    }
}
