"""``python -m demo.provision``: the demo tenant of ``./dev demo``, created in a real Logto
through its Management API.

Given Logto's endpoint and a machine-to-machine application holding Logto's "Logto Management
API access" role, it creates or updates, idempotently, everything ``docs/docker.md`` otherwise
has you click in the Admin Console: the API resources and their permissions, the users' roles,
the users with their passwords, the organization template, the organizations and their members,
and the client app's Traditional web application. Everything comes from the dev issuer's seed
(``dev_issuer/seed.json``, read through :mod:`demo.seed`), so a Logto provisioned here and the
dev issuer of ``./dev demo`` grant the same rights to the same users.

* :mod:`.plan`: what the tenant must hold, from the seed (no I/O);
* :mod:`.management`: the Management API client (token, pages, errors as plain sentences);
* :mod:`.provisioner`: compares the tenant with the plan and makes the calls that close the gap;
* :mod:`.envfile`: the hand-off file compose's client app reads;
* :mod:`.__main__`: the command line.

docs/docker.md lists every Management API call, in the order the command makes them (a test
keeps that list true).
"""
