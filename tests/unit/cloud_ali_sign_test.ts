/**
 * Alibaba Cloud's RPC signature (V2, HMAC-SHA1) against the worked examples Alibaba publishes:
 *
 * - ECS DescribeRegions, AccessKeySecret `testsecret` (the "Request signatures" page of the RPC API
 *   reference; the same vector is in Alibaba's SDK tests).
 * - SMS SendSms, AccessKeySecret `testSecret`, with a Chinese SignName and a JSON TemplateParam (the
 *   SMS service's signature page), which exercises UTF-8 and the `{ " :` escapes.
 *
 * Every expected string below is copied from those pages, not computed by our code.
 */
import assert from "node:assert/strict";
import {
  aliCanonicalQuery,
  aliPercentEncode,
  aliSignature,
  aliSignedQuery,
  aliStringToSign,
  aliTimestamp,
} from "../../src/backends/cloud/ali_sign.ts";

const describeRegions: Record<string, string> = {
  Timestamp: "2016-02-23T12:46:24Z",
  Format: "XML",
  AccessKeyId: "testid",
  Action: "DescribeRegions",
  SignatureMethod: "HMAC-SHA1",
  SignatureNonce: "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
  Version: "2014-05-26",
  SignatureVersion: "1.0",
};

const sendSms: Record<string, string> = {
  AccessKeyId: "testId",
  Action: "SendSms",
  Format: "XML",
  OutId: "123",
  PhoneNumbers: "15300000001",
  RegionId: "cn-hangzhou",
  SignName: "阿里云短信测试专用",
  SignatureMethod: "HMAC-SHA1",
  SignatureNonce: "45e25e9b-0a6f-4070-8c85-2956eda1b466",
  SignatureVersion: "1.0",
  TemplateCode: "SMS_71390007",
  TemplateParam: `{"customer":"test"}`,
  Timestamp: "2017-07-12T02:42:19Z",
  Version: "2017-05-25",
};

Deno.test("ali sign: DescribeRegions example — canonical query, string to sign, signature", async () => {
  assert.equal(
    aliCanonicalQuery(describeRegions),
    "AccessKeyId=testid&Action=DescribeRegions&Format=XML&SignatureMethod=HMAC-SHA1" +
      "&SignatureNonce=3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf&SignatureVersion=1.0" +
      "&Timestamp=2016-02-23T12%3A46%3A24Z&Version=2014-05-26",
  );
  assert.equal(
    aliStringToSign("GET", describeRegions),
    "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML" +
      "%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf" +
      "%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26",
  );
  assert.equal(await aliSignature("GET", describeRegions, "testsecret"), "OLeaidS1JvxuMvnyHOwuJ+uX5qY=");
});

Deno.test("ali sign: SendSms example — UTF-8 and JSON values, and the signed query", async () => {
  assert.equal(
    aliStringToSign("GET", sendSms),
    "GET&%2F&AccessKeyId%3DtestId%26Action%3DSendSms%26Format%3DXML%26OutId%3D123" +
      "%26PhoneNumbers%3D15300000001%26RegionId%3Dcn-hangzhou" +
      "%26SignName%3D%25E9%2598%25BF%25E9%2587%258C%25E4%25BA%2591%25E7%259F%25AD%25E4%25BF%25A1" +
      "%25E6%25B5%258B%25E8%25AF%2595%25E4%25B8%2593%25E7%2594%25A8" +
      "%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D45e25e9b-0a6f-4070-8c85-2956eda1b466" +
      "%26SignatureVersion%3D1.0%26TemplateCode%3DSMS_71390007" +
      "%26TemplateParam%3D%257B%2522customer%2522%253A%2522test%2522%257D" +
      "%26Timestamp%3D2017-07-12T02%253A42%253A19Z%26Version%3D2017-05-25",
  );
  assert.equal(await aliSignature("GET", sendSms, "testSecret"), "zJDF+Lrzhj/ThnlvIToysFRq6t4=");
  assert.equal(
    await aliSignedQuery("GET", sendSms, "testSecret"),
    "AccessKeyId=testId&Action=SendSms&Format=XML&OutId=123&PhoneNumbers=15300000001" +
      "&RegionId=cn-hangzhou" +
      "&SignName=%E9%98%BF%E9%87%8C%E4%BA%91%E7%9F%AD%E4%BF%A1%E6%B5%8B%E8%AF%95%E4%B8%93%E7%94%A8" +
      "&SignatureMethod=HMAC-SHA1&SignatureNonce=45e25e9b-0a6f-4070-8c85-2956eda1b466" +
      "&SignatureVersion=1.0&TemplateCode=SMS_71390007&TemplateParam=%7B%22customer%22%3A%22test%22%7D" +
      "&Timestamp=2017-07-12T02%3A42%3A19Z&Version=2017-05-25" +
      "&Signature=zJDF%2BLrzhj%2FThnlvIToysFRq6t4%3D",
  );
});

Deno.test("ali sign: a Signature parameter already present is not signed", async () => {
  const withSig = { ...describeRegions, Signature: "stale" };
  assert.equal(await aliSignature("GET", withSig, "testsecret"), "OLeaidS1JvxuMvnyHOwuJ+uX5qY=");
});

Deno.test("ali sign: the method is part of what is signed", async () => {
  assert.ok(aliStringToSign("POST", describeRegions).startsWith("POST&%2F&AccessKeyId%3Dtestid%26"));
  assert.notEqual(
    await aliSignature("POST", describeRegions, "testsecret"),
    "OLeaidS1JvxuMvnyHOwuJ+uX5qY=",
  );
});

Deno.test("ali sign: percent-encoding rules", () => {
  const cases: [string, string][] = [
    ["a b", "a%20b"], // space is %20, never +
    ["*", "%2A"], // encodeURIComponent leaves * alone; Alibaba does not
    ["~", "~"], // unreserved
    ["-_.", "-_."],
    ["AZaz09", "AZaz09"],
    ["+", "%2B"],
    ["/", "%2F"],
    ["=&", "%3D%26"],
    ["!'()", "%21%27%28%29"],
    [":", "%3A"],
    ["10.5.1.0/24", "10.5.1.0%2F24"],
    ["é", "%C3%A9"], // UTF-8 bytes, upper-case hex
    ["\u{1F600}", "%F0%9F%98%80"],
  ];
  for (const [raw, want] of cases) assert.equal(aliPercentEncode(raw), want, JSON.stringify(raw));
});

Deno.test("ali sign: parameters sort by name, so their order does not matter", () => {
  const reversed = Object.fromEntries(Object.entries(describeRegions).reverse());
  assert.equal(aliCanonicalQuery(reversed), aliCanonicalQuery(describeRegions));
  // Upper case sorts before lower case (byte order), as Alibaba's SDKs sort.
  assert.equal(aliCanonicalQuery({ b: "1", B: "2", a: "3" }), "B=2&a=3&b=1");
});

Deno.test("ali sign: Timestamp is ISO 8601 UTC to the second", () => {
  assert.equal(aliTimestamp(Date.UTC(2016, 1, 23, 12, 46, 24, 789)), "2016-02-23T12:46:24Z");
  assert.equal(aliTimestamp(Date.UTC(2024, 11, 31, 23, 59, 59, 0)), "2024-12-31T23:59:59Z");
});
