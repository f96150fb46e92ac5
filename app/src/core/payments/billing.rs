//! Stripe Billing calls for subscriptions: each plan version's Product and Price, Checkout
//! in `subscription` mode, and reading or changing a subscription. Subscription and invoice
//! answers are read as raw JSON by the same few fields the webhook inbox reads, so a new
//! Stripe API version cannot make us misread them.

use std::collections::HashMap;

use stripe::{IdempotencyKey, RequestStrategy, StripeRequest};
use stripe_billing::invoice::ListInvoice;
use stripe_billing::subscription::{
    RetrieveSubscription, UpdateSubscription, UpdateSubscriptionItems,
    UpdateSubscriptionProrationBehavior,
};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionSubscriptionData,
};
use stripe_checkout::CheckoutSessionMode;
use stripe_product::price::{CreatePrice, CreatePriceRecurring, CreatePriceRecurringInterval};
use stripe_product::product::CreateProduct;

use super::gateway::{stripe_error, StripeGateway};
use crate::core::error::{Error, Result};

/// What a subscription's Checkout Session is created with.
pub struct SubscriptionCheckout<'a> {
    pub subscription_id: &'a str,
    pub price_id: &'a str,
    pub email: Option<&'a str>,
    pub stripe_customer: Option<&'a str>,
    pub success_url: &'a str,
    pub cancel_url: &'a str,
}

fn key(text: String) -> Result<RequestStrategy> {
    Ok(RequestStrategy::Idempotent(
        IdempotencyKey::new(text).map_err(|e| Error::internal(e.to_string()))?,
    ))
}

fn to_json(v: &miniserde::json::Value) -> Result<serde_json::Value> {
    serde_json::from_str(&miniserde::json::to_string(v)).map_err(|e| Error::internal(e.to_string()))
}

impl StripeGateway {
    /// Sends a typed request and reads the answer as raw JSON.
    async fn send_raw(
        &self,
        request: &impl StripeRequest,
        strategy: Option<RequestStrategy>,
    ) -> Result<serde_json::Value> {
        let mut call = request.build().customize::<miniserde::json::Value>();
        if let Some(s) = strategy {
            call = call.request_strategy(s);
        }
        let answer = call.send(&self.client).await.map_err(stripe_error)?;
        to_json(&answer)
    }

    /// Creates the Product and monthly Price of a plan version; idempotent on the version.
    pub async fn create_plan_price(
        &self,
        version_id: &str,
        name: &str,
        fee_minor: i64,
    ) -> Result<(String, String)> {
        let meta = HashMap::from([("tally_plan_version".to_string(), version_id.to_string())]);
        let product = CreateProduct::new(name)
            .metadata(meta.clone())
            .customize()
            .request_strategy(key(format!("plan-product-{version_id}"))?)
            .send(&self.client)
            .await
            .map_err(stripe_error)?;
        let price = CreatePrice::new(self.currency.clone())
            .product(product.id.as_str())
            .unit_amount(fee_minor)
            .recurring(CreatePriceRecurring::new(
                CreatePriceRecurringInterval::Month,
            ))
            .metadata(meta)
            .customize()
            .request_strategy(key(format!("plan-price-{version_id}"))?)
            .send(&self.client)
            .await
            .map_err(stripe_error)?;
        Ok((
            product.id.as_str().to_string(),
            price.id.as_str().to_string(),
        ))
    }

    /// A Checkout Session in `subscription` mode; idempotent on the subscription id.
    pub async fn create_subscription_session(
        &self,
        c: &SubscriptionCheckout<'_>,
    ) -> Result<(String, String)> {
        let meta = HashMap::from([(
            "tally_subscription_id".to_string(),
            c.subscription_id.to_string(),
        )]);
        let mut item = CreateCheckoutSessionLineItems::new();
        item.price = Some(c.price_id.to_string());
        item.quantity = Some(1);
        let mut data = CreateCheckoutSessionSubscriptionData::new();
        data.metadata = Some(meta.clone());
        let mut req = CreateCheckoutSession::new()
            .mode(CheckoutSessionMode::Subscription)
            .line_items(vec![item])
            .success_url(c.success_url)
            .cancel_url(c.cancel_url)
            .metadata(meta)
            .subscription_data(data);
        match (c.stripe_customer, c.email) {
            (Some(customer), _) => req = req.customer(customer),
            (None, Some(email)) => req = req.customer_email(email),
            (None, None) => {}
        }
        // Subscription mode always creates a Stripe customer (`customer_creation` is for
        // payment mode only).
        let session = req
            .customize()
            .request_strategy(key(format!("subscription-{}", c.subscription_id))?)
            .send(&self.client)
            .await
            .map_err(stripe_error)?;
        let url = session
            .url
            .clone()
            .ok_or_else(|| Error::Unavailable("Stripe returned a session without a URL".into()))?;
        Ok((session.id.as_str().to_string(), url))
    }

    pub async fn retrieve_subscription(&self, stripe_id: &str) -> Result<serde_json::Value> {
        self.send_raw(&RetrieveSubscription::new(stripe_id), None)
            .await
    }

    /// Moves the subscription to another price: prorated and invoiced now (an upgrade) or
    /// from the next period without proration (a downgrade). `change` makes it idempotent.
    pub async fn change_price(
        &self,
        stripe_id: &str,
        price_id: &str,
        prorate_now: bool,
        change: &str,
    ) -> Result<serde_json::Value> {
        let current = self.retrieve_subscription(stripe_id).await?;
        let item_id = current["items"]["data"][0]["id"]
            .as_str()
            .ok_or_else(|| Error::Unavailable("the subscription has no item".into()))?;
        let mut item = UpdateSubscriptionItems::new();
        item.id = Some(item_id.to_string());
        item.price = Some(price_id.to_string());
        let behavior = if prorate_now {
            UpdateSubscriptionProrationBehavior::AlwaysInvoice
        } else {
            UpdateSubscriptionProrationBehavior::None
        };
        let req = UpdateSubscription::new(stripe_id)
            .items(vec![item])
            .proration_behavior(behavior);
        self.send_raw(&req, Some(key(format!("change-{change}"))?))
            .await
    }

    pub async fn set_cancel_at_period_end(
        &self,
        stripe_id: &str,
        cancel: bool,
    ) -> Result<serde_json::Value> {
        let req = UpdateSubscription::new(stripe_id).cancel_at_period_end(cancel);
        self.send_raw(&req, None).await
    }

    /// The subscription's invoices, newest first (reconciliation).
    pub async fn invoices(&self, stripe_id: &str) -> Result<Vec<serde_json::Value>> {
        let list = self
            .send_raw(&ListInvoice::new().subscription(stripe_id).limit(100), None)
            .await?;
        Ok(list["data"].as_array().cloned().unwrap_or_default())
    }
}
