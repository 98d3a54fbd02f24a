/**
 * The cloud route backends: each node has its cloud's VPC route its lease subnet to it
 * (route_backend.ts). The providers are listed here once, for the registry and for
 * `flanneld --cleanup`, which removes our route from the cloud.
 *
 * @module
 */
import { aliVpcProvider } from "./ali_vpc.ts";
import { awsVpcProvider } from "./aws_vpc.ts";
import { gceProvider } from "./gce.ts";
import type { CloudRouteProvider } from "./route_backend.ts";
import { tencentVpcProvider } from "./tencent_vpc.ts";

export { createCloudRouteBackend } from "./route_backend.ts";
export type { CloudRouteProvider, CloudRouter } from "./route_backend.ts";

/** Every cloud route provider this build ships, by `Backend.Type`. */
export const cloudRouteProviders: readonly CloudRouteProvider[] = [
  aliVpcProvider,
  awsVpcProvider,
  gceProvider,
  tencentVpcProvider,
];
