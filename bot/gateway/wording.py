"""What the gateway itself says to customers, when Rasa cannot or must not answer."""

from __future__ import annotations

HOLDING = "Thanks, I've got your message and will answer as soon as I can."
TOO_LONG = (
    "Sorry, that message is too long for me. Please keep it under {limit} characters, "
    "or send it in a few parts."
)
EMPTY = "That message looks empty. What would you like to ask?"
RATE_LIMITED = "You're sending messages faster than I can read them. Please wait a moment, then write again."
UNSUPPORTED = "I can only read text messages for now. Please type your question."
UNAVAILABLE = "Sorry, I couldn't take your message just now. Please try again in a minute."
INVALID = "Sorry, I couldn't read that message."
STALE_BUTTON = "Sorry, that button is no longer available. Please type what you need."
LINKED = "Thanks! This chat is now linked to your customer account."
LINK_INVALID = (
    "That link has expired or isn't valid any more, so I couldn't link your account. "
    "You can still chat with me here."
)
CHOOSE = "Please choose:"
# A person from the agent console takes over, or loses the connection (bot/gateway/desk.py).
AGENT_JOINED = "{agent} from our team is here now and has read our conversation so far."
BACK_IN_QUEUE = (
    "Sorry, the person helping you lost their connection. You keep your place in the queue, "
    "and the next person will see everything you've written."
)
CALLBACK_INSTEAD = (
    "Sorry for the wait — nobody from our team can take the chat right now, so I've made it a "
    "callback: a person will get back to you {when}. Until then I'm here again — I can check an "
    "order, start a refund or answer a question."
)
# The customer writes again soon after a person closed their chat (bot/gateway/desk.py).
FOLLOW_UP_SAME = "{agent} from our team, who just helped you, has your message and will answer here."
FOLLOW_UP_QUEUED = (
    "Thanks — I've passed your message to our team as a follow-up to your chat with {agent}. "
    "The next person free will answer here, and they'll see everything you've written."
)
