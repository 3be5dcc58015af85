"""Alerts: rules find conditions, the store decides each transition once, channels send it.

`rules` holds the evaluators, `channel` what a notifier channel is, `channels` the built-in
ones (webhook, email, telegram), `notifier` the built-in plugin registering them through the
`sambung_register_notifiers` hook, and `service` the supervised loop that runs it all.
"""
