/**
 * SigV4 against AWS's published examples, never against our own output: the signing-key
 * derivation example ("Examples of how to derive a signing key for Signature Version 4"), the
 * IAM ListUsers walk-through of the signing guide, and cases of the Signature Version 4 test
 * suite (aws-sig-v4-test-suite, 2015-08-30, region us-east-1, service `service`). The expected
 * strings are copied from those documents as several independent SDK test fixtures reproduce them.
 */
import assert from "node:assert/strict";
import {
  amzDate,
  canonicalQuery,
  signingKey,
  signV4,
  type SigV4Request,
} from "../../src/backends/cloud/aws_sigv4.ts";
import { hex, sha256Hex } from "../../src/backends/cloud/route_backend.ts";

const SUITE_KEYS = {
  accessKeyId: "AKIDEXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
};
const SUITE_SCOPE = { region: "us-east-1", service: "service" };
const SUITE_DATE = new Date("2015-08-30T12:36:00Z");
const SUITE_CREDENTIAL = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";
/** The session token of the suite's post-sts-token cases. */
const SUITE_TOKEN =
  "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpS" +
  "PfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp" +
  "75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYv" +
  "KTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

Deno.test("sigv4: the signing key of AWS's derivation example", async () => {
  const key = await signingKey("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", {
    region: "us-east-1",
    service: "iam",
  });
  assert.equal(hex(key), "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
});

Deno.test("sigv4: x-amz-date is basic ISO 8601 in UTC", () => {
  assert.equal(amzDate(SUITE_DATE), "20150830T123600Z");
  assert.equal(amzDate(new Date("2011-09-09T23:36:00.999Z")), "20110909T233600Z");
});

interface SuiteCase {
  name: string;
  req: SigV4Request;
  token?: string;
  /** The suite's .creq file, where the case is used to pin the canonical form. */
  canonicalRequest?: string;
  /** SHA-256 of the canonical request: the last line of the suite's .sts file. */
  canonicalHash?: string;
  authorization: string;
}

const url = (s: string) => new URL(`https://example.amazonaws.com${s}`);

const SUITE: SuiteCase[] = [
  {
    name: "get-vanilla",
    req: { method: "GET", url: url("/") },
    authorization:
      `${SUITE_CREDENTIAL}, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31`,
  },
  {
    name: "get-vanilla-query-order-key-case",
    req: { method: "GET", url: url("/?Param2=value2&Param1=value1") },
    canonicalRequest: "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\n" +
      "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" +
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    canonicalHash: "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
    authorization:
      `${SUITE_CREDENTIAL}, SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500`,
  },
  {
    name: "get-header-value-trim",
    req: { method: "GET", url: url("/"), headers: { "My-Header1": " value1", "My-Header2": ' "a   b   c"' } },
    authorization:
      `${SUITE_CREDENTIAL}, SignedHeaders=host;my-header1;my-header2;x-amz-date, Signature=acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736`,
  },
  {
    name: "post-x-www-form-urlencoded",
    req: {
      method: "POST",
      url: url("/"),
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: "Param1=value1",
    },
    canonicalRequest:
      "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\n" +
      "x-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n" +
      "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
    canonicalHash: "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281",
    authorization:
      `${SUITE_CREDENTIAL}, SignedHeaders=content-type;host;x-amz-date, Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a`,
  },
  {
    name: "post-x-www-form-urlencoded-parameters",
    req: {
      method: "POST",
      url: url("/"),
      headers: { "Content-Type": "application/x-www-form-urlencoded; charset=utf8" },
      body: "Param1=value1",
    },
    canonicalHash: "2e1cf7ed91881a30569e46552437e4156c823447bf1781b921b5d486c568dd1c",
    authorization:
      `${SUITE_CREDENTIAL}, SignedHeaders=content-type;host;x-amz-date, Signature=1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe`,
  },
  {
    name: "post-sts-header-before (a session token is sent and signed)",
    req: { method: "POST", url: url("/") },
    token: SUITE_TOKEN,
    canonicalHash: "c237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6",
    authorization:
      `${SUITE_CREDENTIAL}, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead`,
  },
];

for (const c of SUITE) {
  Deno.test(`sigv4: test suite ${c.name}`, async () => {
    const s = await signV4(c.req, { ...SUITE_KEYS, sessionToken: c.token }, SUITE_SCOPE, SUITE_DATE);
    if (c.canonicalRequest) assert.equal(s.canonicalRequest, c.canonicalRequest);
    if (c.canonicalHash) {
      assert.equal(
        s.stringToSign,
        `AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n${c.canonicalHash}`,
      );
    }
    assert.equal(s.authorization, c.authorization);
    assert.equal(s.headers["authorization"], c.authorization);
    assert.equal(s.headers["x-amz-date"], "20150830T123600Z");
    assert.equal(s.headers["x-amz-security-token"], c.token);
    assert.ok(!Object.keys(s.headers).some((h) => h.toLowerCase() === "host"), "fetch sets Host itself");
  });
}

Deno.test("sigv4: the IAM ListUsers example of the signing guide", async () => {
  const s = await signV4(
    {
      method: "GET",
      url: new URL("https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08"),
      headers: { "Content-Type": "application/x-www-form-urlencoded; charset=utf-8" },
    },
    SUITE_KEYS,
    { region: "us-east-1", service: "iam" },
    SUITE_DATE,
  );
  assert.equal(
    await sha256Hex(s.canonicalRequest),
    "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59",
  );
  assert.equal(
    s.authorization,
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, " +
      "SignedHeaders=content-type;host;x-amz-date, " +
      "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
  );
});

Deno.test("sigv4: the canonical query encodes RFC 3986 style and sorts by name, then value", () => {
  assert.equal(canonicalQuery("?b=2&a=1&a=0"), "a=0&a=1&b=2");
  assert.equal(canonicalQuery("k=a%20b&t=~&s=*"), "k=a%20b&s=%2A&t=~");
  assert.equal(canonicalQuery("flag"), "flag=");
  assert.equal(canonicalQuery(""), "");
});
