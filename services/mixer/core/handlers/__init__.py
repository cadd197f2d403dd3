"""Mixer's compiled-in adapters, configured by ``handler`` objects (Istio 1.4's model).

:mod:`.base` holds the values and protocols every adapter shares; each other module is
one adapter. Redis and OTLP adapters live in ``services.mixer.adapters`` (they do I/O
through foreign clients) and plug in through the same :class:`~.base.HandlerBuilder`.
"""
