"""The portal's side of the simulator: fault injection (services, forms, pages, API) and the simulated
slots' public pages under /sim/. The simulated cloud itself is `releases.catalog.providers.simulator`."""
