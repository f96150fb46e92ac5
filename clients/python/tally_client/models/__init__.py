"""Contains all the data models used in inputs/outputs"""

from .advance import Advance
from .authorization_view import AuthorizationView
from .balance_view import BalanceView
from .batch_item_view import BatchItemView
from .batch_item_view_error_type_0 import BatchItemViewErrorType0
from .capture import Capture
from .capture_metadata_type_0 import CaptureMetadataType0
from .change_subscription import ChangeSubscription
from .checkout_session_view import CheckoutSessionView
from .create_authorization import CreateAuthorization
from .create_checkout_session import CreateCheckoutSession
from .create_customer import CreateCustomer
from .create_endpoint import CreateEndpoint
from .create_grant import CreateGrant
from .create_key import CreateKey
from .create_plan import CreatePlan
from .create_subscription import CreateSubscription
from .customer_key_view import CustomerKeyView
from .customer_view import CustomerView
from .data_list_batch_item_view import DataListBatchItemView
from .data_list_model_view import DataListModelView
from .data_list_plan_view import DataListPlanView
from .endpoint_view import EndpointView
from .entitlement_view import EntitlementView
from .error_body import ErrorBody
from .error_object import ErrorObject
from .error_type import ErrorType
from .estimate import Estimate
from .estimate_view import EstimateView
from .event_type_name import EventTypeName
from .failed_request_policy import FailedRequestPolicy
from .grant_view import GrantView
from .limit_period_name import LimitPeriodName
from .line_item_view import LineItemView
from .list_customer_key_view import ListCustomerKeyView
from .list_customer_view import ListCustomerView
from .list_endpoint_view import ListEndpointView
from .list_transaction_view import ListTransactionView
from .list_usage_event_view import ListUsageEventView
from .model_view import ModelView
from .outcome_name import OutcomeName
from .plan_terms import PlanTerms
from .plan_terms_rates import PlanTermsRates
from .plan_view import PlanView
from .portal_session_view import PortalSessionView
from .rates import Rates
from .record_batch import RecordBatch
from .record_usage import RecordUsage
from .record_usage_metadata_type_0 import RecordUsageMetadataType0
from .refund import Refund
from .set_plan import SetPlan
from .subscription_view import SubscriptionView
from .tier import Tier
from .tier_view import TierView
from .transaction_view import TransactionView
from .update_plan import UpdatePlan
from .upsert_model import UpsertModel
from .usage_event_view import UsageEventView

__all__ = (
    "Advance",
    "AuthorizationView",
    "BalanceView",
    "BatchItemView",
    "BatchItemViewErrorType0",
    "Capture",
    "CaptureMetadataType0",
    "ChangeSubscription",
    "CheckoutSessionView",
    "CreateAuthorization",
    "CreateCheckoutSession",
    "CreateCustomer",
    "CreateEndpoint",
    "CreateGrant",
    "CreateKey",
    "CreatePlan",
    "CreateSubscription",
    "CustomerKeyView",
    "CustomerView",
    "DataListBatchItemView",
    "DataListModelView",
    "DataListPlanView",
    "EndpointView",
    "EntitlementView",
    "ErrorBody",
    "ErrorObject",
    "ErrorType",
    "Estimate",
    "EstimateView",
    "EventTypeName",
    "FailedRequestPolicy",
    "GrantView",
    "LimitPeriodName",
    "LineItemView",
    "ListCustomerKeyView",
    "ListCustomerView",
    "ListEndpointView",
    "ListTransactionView",
    "ListUsageEventView",
    "ModelView",
    "OutcomeName",
    "PlanTerms",
    "PlanTermsRates",
    "PlanView",
    "PortalSessionView",
    "Rates",
    "RecordBatch",
    "RecordUsage",
    "RecordUsageMetadataType0",
    "Refund",
    "SetPlan",
    "SubscriptionView",
    "Tier",
    "TierView",
    "TransactionView",
    "UpdatePlan",
    "UpsertModel",
    "UsageEventView",
)
