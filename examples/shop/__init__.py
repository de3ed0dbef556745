"""An order pipeline: orders -> payments -> invoices, with a dead-letter path, and flows
(`examples.shop.flows`) that enrich, window and join the same orders.

`examples.shop.app` declares the app (run it with `riverbed run examples.shop.app:app`),
`examples.shop.events` its event types, and `examples.shop.demo` drives it end to end
(`python -m examples.shop.demo`), following the log with `examples.shop.watch`.
"""
