"""Tokens of a server's deployment: create (the token is shown once, last line; stored hashed), list, revoke (a
running server refuses it at its next request)."""

from __future__ import annotations

import argparse

from envsound.cli.options import add_store_option
from envsound.deploy.tokens import ROLES
from envsound.errors import ConfigError


def register(command) -> None:
    p = command("token", __doc__)
    add_token_options(p)
    p.set_defaults(run=token)


def add_token_options(parser: argparse.ArgumentParser) -> None:
    """``token``'s action, name, role, id and store."""
    parser.add_argument("action", choices=["create", "list", "revoke"])
    parser.add_argument("name", nargs="?", metavar="NAME",
                        help="a sensor token's name is its sensor's (create, revoke)")
    parser.add_argument("--role", choices=ROLES,
                        help="create: sensor (reports and streams as NAME), viewer (reads), reviewer (reads and "
                             "labels an embeddings store's windows), admin (all of it)")
    parser.add_argument("--id", type=int, help="revoke: only this token of NAME's (token list shows ids)")
    add_store_option(parser, help="the server's --store (omitted: the file serve uses when it is given none); it "
                                  "must exist: a missing one is an error, never made")
    parser.add_argument("--new-store", action="store_true",
                        help="create: make the store when --store names none yet (the first token of a deployment)")


def token(args: argparse.Namespace) -> int:
    from envsound.deploy.store import Store
    from envsound.errors import NoStoreError

    if args.action != "list" and not args.name:
        raise ConfigError(f"token {args.action} needs a NAME")
    if args.action == "create" and not args.role:
        raise ConfigError(f"token create needs --role {'|'.join(ROLES)}")
    if args.new_store and args.action != "create":
        raise ConfigError(f"--new-store is for token create: token {args.action} reads the store that is there")
    try:  # only `create --new-store` makes a store: a mistyped --store is not a second, empty one
        store = Store.open(args.store, create=args.new_store)
    except NoStoreError as exc:
        where = f"{exc.where}{' (the default store)' if args.store is None else ''}: no store there"
        if args.action == "create":
            raise ConfigError(f"{where}; add --new-store to make one (or give the --store the server uses)") from None
        raise ConfigError(f"{where}, so no tokens; give the --store the server uses") from None
    if args.action == "create":
        made, secret = store.create_token(args.name, args.role)
        print(f"token {made.id} for {made.name} ({made.role}) in {'a new store, ' if store.new else ''}{store.shown}; "
              "it is shown this once:", flush=True)
        print(secret)
    elif args.action == "list":
        tokens = store.tokens()
        if not tokens:
            print(f"no tokens in {store.shown}")
        for made in tokens:
            state = f"revoked {made.revoked:%Y-%m-%d %H:%M}" if made.revoked else "active"
            print(f"{made.id:5d}  {made.name:24s} {made.role:7s} created {made.created:%Y-%m-%d %H:%M}  {state}")
    else:
        revoked = store.revoke(args.name, args.id)
        if not revoked:
            raise ConfigError(f"{args.name}: no active token{'' if args.id is None else f' {args.id}'} to revoke in "
                              f"{store.shown}")
        print(f"{revoked} token(s) of {args.name} revoked")
    store.close()
    return 0
