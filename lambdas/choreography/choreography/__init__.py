"""Order choreography (course: "Event-Driven Choreography"): four services, no orchestrator.

Commande publishes CommandeCréée; Stock reserves the lines and publishes StockMisAJour (or
StockIndisponible); Facturation reacts to CommandeCréée and publishes FactureCréée;
Notification reacts to FactureCréée or StockMisAJour and tells the customer. On
StockIndisponible, Commande cancels the order (CommandeAnnulée), Facturation voids the invoice
(FactureAnnulée) and Notification tells the customer. Each service is its own Lambda with its
own rules on the one bus, its own idempotency, and publishes its own events; the correlation
id created with the order travels in every event and every log line.

The asset root is ``lambdas/choreography/``. Nothing here may import from outside this folder.
"""
