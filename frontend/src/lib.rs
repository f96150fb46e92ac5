#![recursion_limit = "256"]
//! The hydrate crate: compiled to wasm32, it takes over the server-rendered page.

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
    // A mark that the page is interactive: end-to-end tests with JavaScript wait for it
    // before they use a form whose answer only a hydrated page shows in place.
    if let Some(html) = leptos::prelude::document().document_element() {
        let _ = html.set_attribute("data-hydrated", "");
    }
}
