from tests import factories as f

CREATE = """
mutation Create($input: CreateProductInput!, $key: String) {
  createProduct(input: $input, idempotencyKey: $key) {
    __typename
    ... on ProductPayload { product { id name variants { sku price { amount currency } } } }
    ... on Error { code message field }
    ... on InvalidInputError { problems { code field message } }
  }
}
"""


async def test_staff_creates_product_with_variants(gql, db):
    key = await f.staff_key()
    data = await gql(
        CREATE,
        {"input": {"name": "Tee", "variants": [{"sku": "TEE-M", "name": "Tee M", "price": "19.90"}]}},
        auth=key,
    )
    result = data["createProduct"]
    assert result["__typename"] == "ProductPayload"
    assert result["product"]["variants"] == [{"sku": "TEE-M", "price": {"amount": "19.90", "currency": "USD"}}]


async def test_invalid_product_reports_every_problem_and_writes_nothing(gql, db):
    from ordergraph.models import Product

    key = await f.staff_key()
    await f.variant("TAKEN")
    data = await gql(
        CREATE,
        {"input": {"name": " ", "variants": [
            {"sku": "TAKEN", "name": "x", "price": "1"},
            {"sku": "NEW", "name": "y", "price": "-1", "currency": "XXX"},
        ]}},
        auth=key,
    )
    result = data["createProduct"]
    assert result["__typename"] == "InvalidInputError"
    assert result["code"] == "INVALID_INPUT"
    got = sorted((p["code"], tuple(p["field"])) for p in result["problems"])
    assert got == sorted([
        ("REQUIRED", ("name",)),
        ("ALREADY_EXISTS", ("variants", "0", "sku")),
        ("INVALID_VALUE", ("variants", "1", "price")),
        ("INVALID_VALUE", ("variants", "1", "currency")),
    ])
    assert await Product.all().count() == 1  # only the pre-existing one


async def test_create_product_needs_catalog_scope(gql, db):
    from ordergraph.models import Product

    key = await f.staff_key(["orders:read"])
    data = await gql(CREATE, {"input": {"name": "Tee"}}, auth=key)
    assert data["createProduct"]["__typename"] == "NotAuthorizedError"
    assert data["createProduct"]["code"] == "FORBIDDEN"
    assert await Product.all().count() == 0


async def test_idempotency_key_replays_and_refuses_other_input(gql, db):
    from ordergraph.models import Product

    key = await f.staff_key()
    v = {"input": {"name": "Tee"}, "key": "k-1"}
    first = (await gql(CREATE, v, auth=key))["createProduct"]
    second = (await gql(CREATE, v, auth=key))["createProduct"]
    assert first == second
    other = (await gql(CREATE, {"input": {"name": "Other"}, "key": "k-1"}, auth=key))["createProduct"]
    assert other["__typename"] == "IdempotencyKeyReusedError"
    assert other["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert await Product.all().count() == 1


async def test_bad_credentials_are_refused_with_401(gql, db):
    resp = await gql.raw("{ products { totalCount } }", auth="og_nope_nope")
    assert resp.status_code == 401
