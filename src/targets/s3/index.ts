/** S3-compatible storage as a backup target, over fetch (Node 20, Deno, browsers). */
export { S3Client, type S3ClientOptions, type RetryOptions, type ObjectInfo } from './client.ts';
export { S3Target, type S3TargetOptions } from './s3-target.ts';
export { uploadObject, contentMd5, multipartEtag, type Source, type UploadOptions } from './upload.ts';
export { createPresigner, signRequest, objectUrl, type Presign, type PresignRequest, type PresignerOptions, type S3Credentials, type S3Location, type SignedRequest } from './signing.ts';
export { parseS3Url, isS3Url, s3OptionsFromEnv, type S3Url, type S3EnvOptions } from './config.ts';
