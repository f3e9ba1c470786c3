"""Build the zstd dictionary that `storage.codec` compresses stored webhook bodies with.

    python -m storage.train_dictionary              # writes storage/dictionaries/orders-1.zdict
    python -m storage.train_dictionary --compare    # compressed sizes per dictionary size, writes nothing

Real deliveries differ from the example payloads in `schemas/samples` in every value but agree in their
keys, nesting and formatting. So the training set is the examples multiplied into a few thousand varied
bodies (other ids, names, e-mails, addresses, prices, timestamps, tags, line item counts, JSON layouts),
all drawn from one fixed seed: the dictionary learns the structure, not one customer, and the same zstandard
version rebuilds the same bytes. A held-out body from another seed shows the ratio beyond the training set.

Only needed to make a new dictionary, never at run time. A dictionary that has compressed stored bodies must
never change (they would no longer decode), so the script refuses to overwrite one with different bytes:
train the next name (`--name orders-2`) and register it in `storage.codec.DICTIONARIES`.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import zstandard

from storage import codec

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "schemas" / "samples"
SEED = 1001
HELD_OUT_SEED = 424242
SAMPLE_COUNT = 4000
# Level 3, all example bodies / the held-out body: 8 KB 23.4 % / 21.4 %, 16 KB 21.5 / 20.2, 32 KB 21.1 / 18.7,
# 64 KB 20.5 / 18.0 (no dictionary 38.8 / 39.3). 16 KB holds the structure of every example; beyond it the gain
# comes from memorising this script's finite name, product and city lists: on bodies whose values come from
# none of them, 16 -> 64 KB gains only 0.5 point (23.9 % -> 23.4 %), while 8 -> 16 KB still gains 1.
DICT_SIZE = 16 * 1024
COMPARE_SIZES = (8 * 1024, 16 * 1024, 32 * 1024, 64 * 1024)

# Which example a training body starts from, and how often: Genstore orders dominate the traffic.
TEMPLATE_WEIGHTS = {
    "orders_create.json": 10,
    "orders_paid.json": 10,
    "orders_update.json": 10,
    "orders_fulfilled.json": 8,
    "orders_partiallyFulfilled.json": 6,
    "orders_cancelled.json": 4,
    "api_order_002.json": 8,
    "bigcommerce_order.json": 8,
    "refunds_create.json": 4,
    "refunds_create_snake.json": 2,
}
# How many elements a list holds in a varied body, by its key.
LIST_COUNTS = {
    "lineItems": (1, 8),
    "products": (1, 8),
    "fulfillments": (0, 3),
    "discountCodes": (0, 2),
    "refundLineItems": (1, 4),
    "refund_line_items": (1, 4),
    "transactions": (1, 3),
    "shipping_addresses": (1, 2),
}

FIRST_NAMES = ("Olivia", "Liam", "Emma", "Noah", "Amelia", "Oliver", "Sophia", "Elijah", "Mia", "James", "Chloé",
               "Mateo", "Zoë", "Lucas", "Aiko", "Ravi", "Fatima", "Jürgen", "Siobhan", "Wei", "Priya", "Kwame",
               "Ingrid", "José", "Hannah", "Tomás", "Yuki", "Omar", "Léa", "Dmitri")
LAST_NAMES = ("Smith", "Johnson", "Williams", "Brown", "Garcia", "Miller", "Davis", "Martínez", "Nguyen", "Kim",
              "Müller", "Rossi", "Tanaka", "Okafor", "Singh", "O'Brien", "Kowalski", "Dubois", "Andersson", "Silva",
              "Haddad", "Petrov", "Cohen", "Yamamoto", "Fernández", "Novak", "Campbell", "Lefèvre", "Park", "Ali")
EMAIL_DOMAINS = ("example.com", "gmail.com", "outlook.com", "yahoo.co.uk", "icloud.com", "proton.me", "web.de",
                 "shop-mail.net", "hotmail.fr", "fastmail.com")
# (city, province, province code, zip pattern, country, country code): `9` a digit, `A` a letter.
PLACES = (
    ("Ottawa", "Ontario", "ON", "A9A 9A9", "Canada", "CA"),
    ("Vancouver", "British Columbia", "BC", "A9A 9A9", "Canada", "CA"),
    ("Drayton Valley", "Alberta", "AB", "A9A 9A9", "Canada", "CA"),
    ("Austin", "Texas", "TX", "99999", "United States", "US"),
    ("Brooklyn", "New York", "NY", "99999", "United States", "US"),
    ("Portland", "Oregon", "OR", "99999", "United States", "US"),
    ("Columbus", "Ohio", "OH", "99999-9999", "United States", "US"),
    ("Manchester", "England", "ENG", "AA9 9AA", "United Kingdom", "GB"),
    ("Berlin", "Berlin", "BE", "99999", "Germany", "DE"),
    ("Lyon", "Auvergne-Rhône-Alpes", "ARA", "99999", "France", "FR"),
    ("Melbourne", "Victoria", "VIC", "9999", "Australia", "AU"),
    ("Osaka", "Osaka", "27", "999-9999", "Japan", "JP"),
    ("São Paulo", "São Paulo", "SP", "99999-999", "Brazil", "BR"),
    ("Amsterdam", "North Holland", "NH", "9999 AA", "Netherlands", "NL"),
)
STREETS = ("Main St", "Park Ct", "Oak Avenue", "Maple Drive", "High Street", "Rue de la Paix", "Elm Road",
           "Bahnhofstraße", "King Street West", "Sunset Blvd", "Church Lane", "Harbour View Rd")
PRODUCTS = ("IPod Nano", "Fog Linen Chambray Towel - Beige Stripe", "Organic Cotton Tee", "Merino Wool Beanie",
            "Ceramic Pour-Over Set", "Leather Card Wallet", "Bamboo Cutting Board", "Wireless Earbuds",
            "Trail Running Shoes", "Cold Brew Coffee 1kg", "Linen Duvet Cover - Queen", "Stainless Water Bottle",
            "Gift Card", "Yoga Mat Pro", "Handmade Soap Trio", "Canvas Tote Bag", "Desk Lamp (LED)",
            "Kids' Rain Jacket", "Espresso Cups, set of 4", "Hiking Socks 3-pack")
VARIANTS = ("Pink", "Black", "White / S", "Navy / M", "Olive / L", "XL", "Default Title", "Queen", "500 ml",
            "Natural", "Size 42", "Blue", "")
TAGS = ("imported", "vip", "wholesale", "first-order", "gift", "subscription", "priority", "local-pickup",
        "preorder", "loyal", "b2b", "newsletter", "returning", "influencer")
NOTES = ("", "", "", "Customer changed their mind.", "Please leave at the back door", "Gift wrap, no invoice.",
         "Call before delivery.", "Deliver after 5pm", "Ships with order #1002.", "A note about the customer.")
CURRENCIES = ("USD", "CAD", "EUR", "GBP", "JPY", "AUD", "BRL")
ENUMS = {
    "financialStatus": ("paid", "pending", "authorized", "partially_paid", "refunded", "partially_refunded", "voided"),
    "fulfillmentStatus": ("fulfilled", "partial", "unfulfilled", "restocked", "null"),
    "cancelReason": ("customer", "fraud", "inventory", "declined", "other", "null"),
    "sourceName": ("web", "pos", "instagram", "iphone", "android", "shopify_draft_order"),
    "status": ("success", "failure", "pending", "open", "cancelled"),
    "restockType": ("return", "cancel", "no_restock"),
    "restock_type": ("return", "cancel", "no_restock"),
    "kind": ("refund", "sale", "capture", "void"),
    "gateway": ("authorize_net", "stripe", "paypal", "manual", "shopify_payments"),
    "type": ("fixed_amount", "percentage", "shipping", "physical", "digital"),
    "state": ("enabled", "disabled", "invited", "declined"),
    "code": ("SPRING30", "WELCOME10", "FREESHIP", "VIP-2024", "BLACKFRIDAY", "SUMMER15"),
    "trackingCompany": ("UPS", "FedEx", "DHL Express", "Canada Post", "USPS", "Royal Mail"),
    "payment_method": ("Cash on Delivery", "Credit Card", "PayPal", "Bank Deposit", "Gift Certificate"),
    "shipping_method": ("Flat Rate", "Free Shipping", "Express", "Pickup In Store"),
}
ENUMS["currency"] = ENUMS["presentmentCurrency"] = ENUMS["currency_code"] = CURRENCIES
ENUMS["default_currency_code"] = ENUMS["store_default_currency_code"] = CURRENCIES

_ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[+-]\d\d:\d\d|Z)")
_RFC_TIME = re.compile(r"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4}")
_DECIMAL = re.compile(r"-?\d+\.(\d+)")
_DIGITS = re.compile(r"\d+")
_SMALL_COUNTS = re.compile(r"(?i)quantity|count|items_total|items_shipped|grams|weight|status_id|channel_id")


class Body:
    """One varied body: a customer, a place and a moment that its values agree on."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.first = rng.choice(FIRST_NAMES)
        self.last = rng.choice(LAST_NAMES)
        self.place = rng.choice(PLACES)
        self.moment = datetime(2019, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(7 * 365 * 86400))
        self.offset = timezone(timedelta(hours=rng.choice((-8, -7, -5, -4, -1, 0, 1, 2, 9, 10))))

    def time(self) -> datetime:
        return (self.moment + timedelta(seconds=self.rng.randrange(40 * 86400))).astimezone(self.offset)

    def email(self) -> str:
        local = f"{self.first}.{self.last}".lower().replace("'", "")
        if self.rng.random() < 0.4:
            local += str(self.rng.randrange(1, 999))
        return f"{local}@{self.rng.choice(EMAIL_DOMAINS)}"

    def phone(self, original: str) -> str:
        return _DIGITS.sub(lambda m: self.digits(len(m.group())), original)

    def digits(self, length: int) -> str:
        return str(self.rng.randrange(1, 10)) + "".join(str(self.rng.randrange(10)) for _ in range(length - 1))

    def zip(self) -> str:
        letters = "ABCEGHJKLMNPRSTVWXYZ"
        return "".join(str(self.rng.randrange(10)) if c == "9" else self.rng.choice(letters) if c == "A" else c
                       for c in self.place[3])

    def street(self) -> str:
        return f"{self.rng.randrange(1, 9999)} {self.rng.choice(STREETS)}"

    def amount(self, original: str | float, places: int) -> str:
        value = float(original)
        scale = max(abs(value) * 2, 5.0)
        return f"{self.rng.uniform(0, scale):.{places}f}"


def _by_key(body: Body, key: str, value: str, parent: str) -> str | None:
    """A new string for a key this generator knows, or None."""
    rng, lower = body.rng, key.lower()
    if ("email" in lower and "@" in value) or lower == "email":
        return body.email() if value else value
    if lower in ("firstname", "first_name"):
        return body.first
    if lower in ("lastname", "last_name"):
        return body.last
    if lower == "name" and parent in ("lineItems", "products"):
        return rng.choice(PRODUCTS)
    if lower == "name":
        return f"{body.first} {body.last}"
    if lower == "title":
        return rng.choice(PRODUCTS)
    if lower == "varianttitle":
        return rng.choice(VARIANTS)
    if lower == "sku":
        return f"{''.join(rng.choice('ABCDEFGHKLMNPRSTW') for _ in range(rng.randrange(3, 6)))}-{rng.randrange(999)}"
    if lower == "city":
        return body.place[0]
    if lower in ("province", "state") and parent != "customer":
        return body.place[1]
    if lower == "provincecode":
        return body.place[2]
    if lower == "zip":
        return body.zip()
    if lower == "country" or lower == "geoip_country":
        return body.place[4]
    if lower in ("countrycode", "country_iso2", "geoip_country_iso2"):
        return body.place[5]
    if lower in ("address1", "street_1"):
        return body.street()
    if lower in ("address2", "street_2"):
        return rng.choice(("", "", f"Apartment {rng.randrange(1, 40)}", f"Suite {rng.randrange(100, 900)}", "Unit B"))
    if lower == "company":
        return rng.choice(("", "", "", f"{body.last} & Co", "Acme Retail Ltd"))
    if lower == "latitude":
        return f"{rng.uniform(-60, 70):.5f}"
    if lower == "longitude":
        return f"{rng.uniform(-180, 180):.4f}"
    if "phone" in lower:
        return body.phone(value) if value else rng.choice(("", body.phone("555-555-5555")))
    if lower in ("note", "customer_message", "staff_notes"):
        return rng.choice(NOTES)
    if lower == "tags":
        return ", ".join(rng.sample(TAGS, rng.randrange(0, 4)))
    if value in ENUMS.get(key, ()):
        return rng.choice(ENUMS[key])
    if value in ("true", "false"):
        return rng.choice(("true", "false"))
    return None


def _vary_string(body: Body, key: str, value: str, parent: str) -> str:
    new = _by_key(body, key, value, parent)
    if new is not None:
        return new
    if _RFC_TIME.fullmatch(value):
        return format_datetime(body.time().astimezone(UTC)).replace("-0000", "+0000")
    if _ISO_TIME.search(value):
        return _ISO_TIME.sub(lambda _: body.time().isoformat(), value)
    if decimal := _DECIMAL.fullmatch(value):
        return body.amount(value, len(decimal.group(1)))
    if value.isdigit() and _SMALL_COUNTS.search(key):
        return str(body.rng.choice((0, 1, 1, 1, 2, 3, 5, 12, 250, 500)))
    if value.isdigit():
        return body.digits(max(1, len(value) + body.rng.randrange(-2, 4)))
    # Ids, SKUs, tracking numbers and URLs inside other text: the same shape, other digits.
    return _DIGITS.sub(lambda m: body.digits(len(m.group())), value)


def _vary(body: Body, value: object, key: str = "", parent: str = "") -> object:
    rng = body.rng
    if isinstance(value, dict):
        return {k: _vary(body, v, k, key) for k, v in value.items() if rng.random() > 0.02 or k in ("order", "refund")}
    if isinstance(value, list):
        if key in LIST_COUNTS and value:
            low, high = LIST_COUNTS[key]
            count = min(rng.randint(low, high), rng.randint(low, high))  # mostly few, sometimes many
            return [_vary(body, copy.deepcopy(rng.choice(value)), key, parent) for _ in range(count)]
        return [_vary(body, v, key, parent) for v in value]
    if isinstance(value, bool):
        return rng.random() < 0.5
    if isinstance(value, int):
        if _SMALL_COUNTS.search(key):
            return rng.choice((0, 1, 1, 2, 3, 4))
        return int(body.digits(max(1, len(str(value)) + rng.randrange(0, 4))))
    if isinstance(value, float):
        return float(body.amount(value, 2))
    if isinstance(value, str):
        return _vary_string(body, key, value, parent)
    return value


# How a sender may lay a body out: the examples' own indentation, Python's and most senders' defaults.
LAYOUTS: tuple[Callable[[object], str], ...] = (
    lambda data: json.dumps(data, indent=2, ensure_ascii=False),
    lambda data: json.dumps(data, indent=2, ensure_ascii=False),
    lambda data: json.dumps(data, ensure_ascii=False),
    lambda data: json.dumps(data, separators=(",", ":"), ensure_ascii=False),
    lambda data: json.dumps(data, indent=0, ensure_ascii=False),
    lambda data: json.dumps(data, indent=2),
)


def templates() -> dict[str, object]:
    """The JSON examples, parsed, by file name."""
    return {name: json.loads((SAMPLES_DIR / name).read_bytes()) for name in TEMPLATE_WEIGHTS}


def varied_body(rng: random.Random, template: object) -> bytes:
    """One realistic delivery body made from `template` with every value redrawn."""
    body = Body(rng)
    return rng.choice(LAYOUTS)(_vary(body, template)).encode()


def training_samples(count: int = SAMPLE_COUNT, seed: int = SEED) -> list[bytes]:
    """The deterministic training set: `count` varied bodies drawn from the weighted examples."""
    rng = random.Random(seed)
    parsed = templates()
    names = list(TEMPLATE_WEIGHTS)
    weights = [TEMPLATE_WEIGHTS[name] for name in names]
    return [varied_body(rng, parsed[rng.choices(names, weights)[0]]) for _ in range(count)]


def projection_samples(count: int = SAMPLE_COUNT // 2, seed: int = SEED) -> list[bytes]:
    """The deterministic training set of `projections-N`: stored projections (`storage.projection`) made by
    merging varied order bodies of every order topic, a refund added to every fifth."""
    from schemas import merge, normalize
    from storage.projection import dump_text

    rng = random.Random(seed)
    parsed = templates()
    orders = [name for name in TEMPLATE_WEIGHTS if name.startswith("orders_")]
    refunds = [name for name in TEMPLATE_WEIGHTS if name.startswith("refunds_")]
    out = []
    while len(out) < count:
        name = rng.choice(orders)
        topic = "orders/" + name.removeprefix("orders_").removesuffix(".json")
        try:
            projection = merge(None, topic, "e1", normalize(topic, varied_body(rng, parsed[name]))).projection
            if len(out) % 5 == 0:
                refund = varied_body(rng, parsed[rng.choice(refunds)])
                projection = merge(projection, "refunds/create", "e2", normalize("refunds/create", refund)).projection
        except Exception:  # a varied body the normalizer refuses: not a projection anyone stores
            continue
        out.append(dump_text(projection))
    return out


def held_out_body() -> bytes:
    """A Genstore `orders/paid` body from a seed the training set never uses, laid out like the examples."""
    rng = random.Random(HELD_OUT_SEED)
    body = Body(rng)
    data = _vary(body, templates()["orders_paid.json"])
    return json.dumps(data, indent=2, ensure_ascii=False).encode()


def real_bodies() -> dict[str, bytes]:
    """Every example body in `schemas/samples`, as received."""
    return {path.name: path.read_bytes() for path in sorted(SAMPLES_DIR.iterdir()) if path.suffix in (".json", ".txt")}


def train(size: int, samples: list[bytes], dict_id: int) -> zstandard.ZstdCompressionDict:
    # One thread: the parameter search then visits its candidates in one order, so the result is reproducible.
    return zstandard.train_dictionary(size, samples, dict_id=dict_id, level=codec.LEVEL, threads=1, steps=32)


def compressed_size(dictionary: zstandard.ZstdCompressionDict, body: bytes) -> int:
    return len(zstandard.ZstdCompressor(level=codec.LEVEL, dict_data=dictionary, **codec.FRAME_OPTIONS).compress(body))


def compare(samples: list[bytes], dict_id: int) -> None:
    """Print what each candidate dictionary size makes of the real examples and of the held-out body."""
    bodies = real_bodies()
    held_out = held_out_body()
    total = sum(len(b) for b in bodies.values())
    plain = zstandard.ZstdCompressor(level=codec.LEVEL, **codec.FRAME_OPTIONS)
    print(f"{'dictionary':>10} {'examples':>9} {'ratio':>6} {'held-out':>9} {'ratio':>6}")
    print(f"{'none':>10} {sum(len(plain.compress(b)) for b in bodies.values()):>9} "
          f"{sum(len(plain.compress(b)) for b in bodies.values()) / total:>6.1%} "
          f"{len(plain.compress(held_out)):>9} {len(plain.compress(held_out)) / len(held_out):>6.1%}")
    for size in COMPARE_SIZES:
        dictionary = train(size, samples, dict_id)
        packed = sum(compressed_size(dictionary, b) for b in bodies.values())
        held = compressed_size(dictionary, held_out)
        print(f"{size // 1024:>8} KB {packed:>9} {packed / total:>6.1%} {held:>9} {held / len(held_out):>6.1%}")
    print(f"examples: {len(bodies)} bodies, {total} bytes; held-out: {len(held_out)} bytes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m storage.train_dictionary", description=__doc__.split("\n")[0])
    parser.add_argument("--name", default=codec.CURRENT,
                        help="dictionary name: `orders-N` (bodies) or `projections-N` (default %(default)s)")
    parser.add_argument("--size", type=int, default=DICT_SIZE, help="dictionary size in bytes (default %(default)s)")
    parser.add_argument("--compare", action="store_true", help="print sizes per dictionary size, write nothing")
    args = parser.parse_args(argv)
    match = re.fullmatch(r"(orders|projections)-([1-9]\d{0,3})", args.name)
    if not match:
        parser.error("--name must be orders-N or projections-N")
    # 32768 + N (orders) or 36864 + N (projections): the first ids outside the range zstd reserves, and small
    # enough for a 2-byte frame field.
    dict_id = (32768 if match.group(1) == "orders" else 36864) + int(match.group(2))
    samples = training_samples() if match.group(1) == "orders" else projection_samples()
    if held_out_body() in samples:
        raise AssertionError("the held-out body is in the training set")
    if args.compare:
        compare(samples, dict_id)
        return 0
    data = train(args.size, samples, dict_id).as_bytes()
    path = codec.DICTIONARY_DIR / f"{args.name}.zdict"
    if path.exists() and path.read_bytes() != data:
        print(f"{path.name} exists with other bytes; bodies stored with it would no longer decode. "
              "Train a new name instead.", file=sys.stderr)
        return 1
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    held_out = held_out_body() if match.group(1) == "orders" else projection_samples(1, HELD_OUT_SEED)[0]
    print(f"wrote {path.name}: {len(data)} bytes, id {dict_id}, from {len(samples)} samples; held-out "
          f"{len(held_out)} -> {compressed_size(zstandard.ZstdCompressionDict(data), held_out)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
