"""The CRM schema: every table CareLoop keeps, importable from one place."""

from .base import Base, UTCDateTime, utcnow
from .care import HANDOFF_CALLBACK, HANDOFF_LIVE, Complaint, Handoff, Offer, RetentionAttempt, Survey
from .cases import AgentTeam, CaseAlert, CaseEvent, Notice
from .commerce import Order, OrderLine, Product, Refund, Subscription
from .conversation import Conversation, InteractionEvent, Message
from .customer import ChannelIdentity, Consent, Customer
from .desk import AgentNote, CannedReply
from .enums import *  # noqa: F403 - the vocabularies belong with the models
from .feedback import (
    FeedbackEvent,
    FeedbackEventKind,
    FeedbackItem,
    FeedbackSource,
    FeedbackState,
    FeedbackTheme,
)
from .integration import ApiKey, ApiScope
from .knowledge import DriftEpisode, SegmentChange, SegmentRun
from .mail import EmailVerification, MailPurpose, MailStatus, OutboundMail
from .marketing import Campaign, Delivery
from .review import NluReview, NluReviewState, ReviewDecision, ReviewReason
from .staff import Agent, AuditLog, ConsoleSession
from .webhook import WebhookDelivery, WebhookStatus, WebhookSubscription

__all__ = [
    "Agent",
    "AgentNote",
    "AgentTeam",
    "ApiKey",
    "ApiScope",
    "AuditLog",
    "Base",
    "Campaign",
    "CannedReply",
    "CaseAlert",
    "CaseEvent",
    "ChannelIdentity",
    "Complaint",
    "Consent",
    "ConsoleSession",
    "Conversation",
    "Customer",
    "Delivery",
    "DriftEpisode",
    "EmailVerification",
    "FeedbackEvent",
    "FeedbackEventKind",
    "FeedbackItem",
    "FeedbackSource",
    "FeedbackState",
    "FeedbackTheme",
    "HANDOFF_CALLBACK",
    "HANDOFF_LIVE",
    "Handoff",
    "InteractionEvent",
    "MailPurpose",
    "MailStatus",
    "Message",
    "NluReview",
    "NluReviewState",
    "Notice",
    "Offer",
    "Order",
    "OrderLine",
    "OutboundMail",
    "Product",
    "Refund",
    "RetentionAttempt",
    "ReviewDecision",
    "ReviewReason",
    "SegmentChange",
    "SegmentRun",
    "Subscription",
    "Survey",
    "UTCDateTime",
    "WebhookDelivery",
    "WebhookStatus",
    "WebhookSubscription",
    "utcnow",
]
